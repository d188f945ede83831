"""The Members page's reads and its one write: people with their role, daily budget and active-run limit,
found by name (never by a raw id), and the budget an operator sets for one of them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet

from runs.models import UserBudget

from .audit import record
from .models import AuditAction

MAX_LISTED = 200


def find_members(query: str = "") -> QuerySet[Any]:
    """People, by username, name or email; budgets joined and roles prefetched (three queries in all)."""
    people = get_user_model().objects.filter(is_active=True).select_related("budget").prefetch_related("groups")
    if query:
        people = people.filter(
            Q(username__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
        )
    return people.order_by("username")


def role_of(user: Any) -> str:
    if user.is_superuser:
        return "Admin"
    names = [g.name for g in user.groups.all()]  # prefetched
    return ", ".join(names) or ("Operator" if user.is_staff else "Student")


class BudgetError(Exception):
    """A budget that cannot be saved as asked, in plain words."""


@transaction.atomic
def set_budget(
    *, member: Any, daily_usd: Decimal | None, max_active_runs: int | None, actor: Any, ip: str | None
) -> UserBudget | None:
    """Set (or, with both empty, remove) one person's daily budget and active-run limit, with an audit event."""
    existing = UserBudget.objects.select_for_update().filter(user=member).first()
    if daily_usd is None and max_active_runs is None:
        if existing is not None:
            record(AuditAction.DELETED, existing, actor=actor, ip=ip)
            existing.delete()
        return None
    if daily_usd is None:
        raise BudgetError("An active-run limit goes with a daily budget: give both, or leave both empty.")
    budget = existing or UserBudget(user=member)
    budget.daily_usd, budget.max_active_runs = daily_usd, max_active_runs
    budget.save()
    record(AuditAction.CHANGED if existing else AuditAction.CREATED, budget, actor=actor, ip=ip)
    return budget
