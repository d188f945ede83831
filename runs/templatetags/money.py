"""`{% load money %}` then `{{ run.cost_usd|usd }}`: the one money formatter in templates."""

from __future__ import annotations

from decimal import Decimal

from django import template

from runs.money import format_usd

register = template.Library()


@register.filter
def usd(value: Decimal | float | None) -> str:
    return format_usd(value)
