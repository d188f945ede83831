"""`{% load durations %}` then `{{ seconds|duration }}`: "42 s", "3 min 05 s" (static/js/run.js ticks the same way)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
