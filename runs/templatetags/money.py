"""`{% load money %}` then `{{ run.cost_usd|usd }}`: the one money formatter in templates."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import format_html

from runs import money
from runs.models import Run
from runs.money import format_usd

register = template.Library()


@register.filter
def usd(value: Decimal | float | None) -> str:
    return format_usd(value)


@register.filter
def run_cost(run: Run) -> str:
    """`{{ run|run_cost }}`: "free", "$0.0052", "unpriced" or "not run" (runs.money.run_cost)."""
    return money.run_cost(run)


@register.filter
def model_name(name: str) -> str:
    """ "openai_compatible/<wbr>llama3.2": a long model name may break after its slash, never mid-word."""
    if not name:
        return ""
    provider, sep, rest = name.partition("/")
    return format_html('<span class="model-name">{}{}<wbr>{}</span>', provider, sep, rest)
