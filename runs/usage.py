"""Spend and tokens per day, per workflow and per provider, for the usage page (server-rendered SVG bars)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Run, UserBudget

CHART_HEIGHT = 120


@dataclass
class Bar:
    label: str
    cost: Decimal
    tokens: int
    runs: int
    unpriced: int = 0
    x: int = 0
    y: int = 0
    height: int = 0


def _scale(bars: list[Bar], width: int, by_tokens: bool) -> list[Bar]:
    def value(bar: Bar) -> Decimal:
        return Decimal(bar.tokens) if by_tokens else bar.cost

    top = max((value(b) for b in bars), default=Decimal(0)) or Decimal(1)
    for i, bar in enumerate(bars):
        bar.x = i * width
        bar.height = int(CHART_HEIGHT * value(bar) / top)
        bar.y = CHART_HEIGHT - bar.height
    return bars


def summary(runs: QuerySet[Run], user: Any, days: int = 30) -> dict[str, Any]:
    since = timezone.now() - timedelta(days=days)
    recent = runs.filter(created_at__gte=since).order_by()
    totals = {
        "cost": Sum("cost_usd"),
        "tokens": Sum(F("prompt_tokens") + F("completion_tokens")),
        "runs": Count("pk"),
        "unpriced": Count("pk", filter=Q(cost_unpriced=True)),
    }
    by_day = {row["day"]: row for row in recent.annotate(day=TruncDate("created_at")).values("day").annotate(**totals)}
    today = timezone.localdate()
    daily = []
    for offset in range(days - 1, -1, -1):
        day: date = today - timedelta(days=offset)
        row = by_day.get(day, {})
        daily.append(
            Bar(
                day.strftime("%m-%d"),
                Decimal(row.get("cost") or 0),
                int(row.get("tokens") or 0),
                int(row.get("runs") or 0),
                int(row.get("unpriced") or 0),
            )
        )
    per_workflow = [
        Bar(
            row["workflow_version__workflow__title"],
            Decimal(row["cost"] or 0),
            int(row["tokens"] or 0),
            row["runs"],
            row["unpriced"],
        )
        for row in recent.values("workflow_version__workflow__title").annotate(**totals).order_by("-cost")
    ]
    providers: dict[str, Bar] = {}
    for row in recent.values("model_used").annotate(**totals):
        name = (row["model_used"] or "not started").split("/")[0]
        bar = providers.setdefault(name, Bar(name, Decimal(0), 0, 0))
        bar.cost += Decimal(row["cost"] or 0)
        bar.tokens += int(row["tokens"] or 0)
        bar.runs += row["runs"]
        bar.unpriced += row["unpriced"]
    budget = UserBudget.objects.filter(user=user).first()
    spent_today = Decimal(runs.filter(user=user, created_at__date=today).aggregate(c=Sum("cost_usd"))["c"] or 0)
    by_tokens = not any(b.cost for b in daily)  # all unpriced (the offline model): chart the tokens instead
    return {
        "days": days,
        "daily": _scale(daily, 20, by_tokens),
        "by_tokens": by_tokens,
        "per_workflow": per_workflow,
        "per_provider": sorted(providers.values(), key=lambda b: -b.cost),
        "total_cost": sum((b.cost for b in daily), Decimal(0)),
        "total_tokens": sum(b.tokens for b in daily),
        "chart_height": CHART_HEIGHT,
        "chart_width": 20 * days + 40,
        "budget": budget,
        "spent_today": spent_today,
        "budget_left": (budget.daily_usd - spent_today) if budget else None,
    }
