"""Spending limits set by operators: a daily budget per user and a monthly budget per connection."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from providers.models import ProviderConnection

from .models import Run, UserBudget


def _spent(runs: object) -> Decimal:
    return Decimal(runs.aggregate(total=Sum("cost_usd"))["total"] or 0)  # type: ignore[attr-defined]


def refusal(run: Run, connection_id: int | None, estimate: Decimal | None) -> str | None:
    """Why this run would pass a user's or a connection's budget, or None."""
    expected = estimate or Decimal(0)
    now = timezone.localtime()
    budget = UserBudget.objects.filter(user_id=run.user_id).first()
    if budget is not None:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        spent = _spent(Run.objects.filter(user_id=run.user_id, created_at__gte=day).exclude(pk=run.pk))
        if spent + expected > budget.daily_usd:
            return (
                f"Refused: your daily budget is ${budget.daily_usd:.2f}; ${spent:.4f} is spent today and this run "
                f"could cost up to ${expected:.4f}."
            )
    connection = ProviderConnection.objects.filter(pk=connection_id).first() if connection_id else None
    if connection is not None and connection.monthly_budget_usd is not None:
        month = datetime(now.year, now.month, 1, tzinfo=now.tzinfo)
        spent = _spent(Run.objects.filter(connection_id=connection.pk, created_at__gte=month).exclude(pk=run.pk))
        if spent + expected > connection.monthly_budget_usd:
            return (
                f"Refused: the monthly budget of the {connection} connection is ${connection.monthly_budget_usd:.2f} "
                f"and ${spent:.4f} is spent this month."
            )
    return None
