"""Spend and tokens per day, per workflow and per provider, for the usage page (server-rendered SVG bars).

The page reads the rollups, never the runs: UsageDay (per day x user x workflow x model) for a student,
UsageDayTotal (per day x workflow x model) for an operator. A run is added to both once, by
`record_finished`, when it ends; `rebuild` recomputes the whole rollup from the runs (scheduled daily
and `manage.py rebuild_usage`), so a run that ended without the hook (deleted, recovered) is caught up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from providers.offline import MODEL as OFFLINE_MODEL

from .models import FINISHED, Run, UsageCounts, UsageDay, UsageDayTotal, UserBudget
from .money import FREE, NOT_RUN, UNPRICED, describe_cost

CHART_HEIGHT = 120
BATCH = 2000


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

    @property
    def cost_text(self) -> str:
        """ "$0.25", "free", "unpriced", "not run" or "$0.25 + 2 unpriced" (runs.money's words; computed here:
        an include per bar cost more than the rest of the page)."""
        if not self.tokens and not self.cost:
            return NOT_RUN if self.label == NOT_RUN or not self.runs else FREE
        if self.unpriced == self.runs:
            return UNPRICED
        text = describe_cost(self.cost)
        return f"{text} + {self.unpriced} unpriced" if self.unpriced else text


@dataclass
class PassRate:
    """How many of a workflow's checked runs on one model passed their quality checks."""

    workflow: str
    model: str
    checked: int
    passed: int

    @property
    def percent(self) -> int:
        return round(100 * self.passed / self.checked) if self.checked else 0


def _unpriced(run: dict[str, Any]) -> int:
    # The offline demo model is free, not unpriced: one vocabulary with the run's own page.
    return int(run["cost_unpriced"] and run["model_used"] != OFFLINE_MODEL)


def _add(rollup: type[UsageCounts], key: dict[str, Any], run: dict[str, Any]) -> None:
    """Add one run's figures to the rollup row `key`, creating it when it is the first."""
    add = {
        "runs": F("runs") + 1,
        "unpriced_runs": F("unpriced_runs") + _unpriced(run),
        "cost_usd": F("cost_usd") + run["cost_usd"],
        "prompt_tokens": F("prompt_tokens") + run["prompt_tokens"],
        "completion_tokens": F("completion_tokens") + run["completion_tokens"],
        "checked_runs": F("checked_runs") + int(run["checks_passed"] is not None),
        "passed_runs": F("passed_runs") + int(run["checks_passed"] is True),
    }
    if rollup.objects.filter(**key).update(**add):  # type: ignore[attr-defined]
        return
    try:
        with transaction.atomic():  # a savepoint: another process may create the row first
            rollup.objects.create(  # type: ignore[attr-defined]
                **key,
                runs=1,
                unpriced_runs=_unpriced(run),
                cost_usd=run["cost_usd"],
                prompt_tokens=run["prompt_tokens"],
                completion_tokens=run["completion_tokens"],
                checked_runs=int(run["checks_passed"] is not None),
                passed_runs=int(run["checks_passed"] is True),
            )
    except IntegrityError:
        rollup.objects.filter(**key).update(**add)  # type: ignore[attr-defined]


_RUN_FIGURES = (
    "created_at", "user_id", "workflow_version__workflow_id", "model_used", "cost_usd", "cost_unpriced",
    "prompt_tokens", "completion_tokens", "checks_passed",
)  # fmt: skip


def record_finished(run: Run) -> bool:
    """Add a finished run to the rollups, once: the run row is claimed (usage_recorded False -> True) in the
    same transaction as the additions, so a second call (a re-delivered task, a retry) adds nothing.
    Returns whether it was added."""
    with transaction.atomic():
        claimed = Run.objects.filter(pk=run.pk, status__in=FINISHED, usage_recorded=False).update(usage_recorded=True)
        if not claimed:
            return False
        row = Run.objects.filter(pk=run.pk).values(*_RUN_FIGURES).get()
        key = {
            "day": timezone.localdate(row["created_at"]),
            "workflow_id": row["workflow_version__workflow_id"],
            "model": row["model_used"],
        }
        _add(UsageDay, {**key, "user_id": row["user_id"]}, row)
        _add(UsageDayTotal, key, row)
    return True


_SUMS = {
    "n": Count("pk"),
    "unpriced": Count("pk", filter=Q(cost_unpriced=True) & ~Q(model_used=OFFLINE_MODEL)),
    "cost": Sum("cost_usd"),
    "p": Sum("prompt_tokens"),
    "c": Sum("completion_tokens"),
    "checked": Count("pk", filter=Q(checks_passed__isnull=False)),
    "passed": Count("pk", filter=Q(checks_passed=True)),
}


def _rows(rollup: type[UsageCounts], groups: QuerySet[Run], extra: tuple[str, ...]) -> list[UsageCounts]:
    return [
        rollup(
            day=g["day"],
            workflow_id=g["workflow_version__workflow_id"],
            model=g["model_used"],
            runs=g["n"],
            unpriced_runs=g["unpriced"],
            cost_usd=g["cost"] or 0,
            prompt_tokens=g["p"] or 0,
            completion_tokens=g["c"] or 0,
            checked_runs=g["checked"],
            passed_runs=g["passed"],
            **{name: g[name] for name in extra},
        )
        for g in groups.values("day", "workflow_version__workflow_id", "model_used", *extra)
        .annotate(**_SUMS)
        .iterator(chunk_size=BATCH)
    ]


def rebuild() -> int:
    """Recompute the rollups from the finished runs; returns the number of per-user rows."""
    with transaction.atomic():
        # Claim first, then sum what was claimed: a run finishing meanwhile is either in this sum or added
        # by its own record_finished afterwards, never both.
        Run.objects.filter(status__in=FINISHED, usage_recorded=False).update(usage_recorded=True)
        UsageDay.objects.all().delete()
        UsageDayTotal.objects.all().delete()
        claimed = Run.objects.filter(usage_recorded=True).order_by().annotate(day=TruncDate("created_at"))
        per_user = _rows(UsageDay, claimed, ("user_id",))
        UsageDay.objects.bulk_create(per_user, batch_size=BATCH)  # type: ignore[arg-type]
        UsageDayTotal.objects.bulk_create(_rows(UsageDayTotal, claimed, ()), batch_size=BATCH)  # type: ignore[arg-type]
    return len(per_user)


def _scale(bars: list[Bar], width: int, by_tokens: bool) -> list[Bar]:
    def value(bar: Bar) -> Decimal:
        return Decimal(bar.tokens) if by_tokens else bar.cost

    top = max((value(b) for b in bars), default=Decimal(0)) or Decimal(1)
    for i, bar in enumerate(bars):
        bar.x = i * width
        bar.height = int(CHART_HEIGHT * value(bar) / top)
        bar.y = CHART_HEIGHT - bar.height
    return bars


_TOTALS = {
    "cost": Sum("cost_usd"),
    "tokens": Sum(F("prompt_tokens") + F("completion_tokens")),
    "runs": Sum("runs"),
    "unpriced": Sum("unpriced_runs"),
}


def _bar(label: str, row: dict[str, Any]) -> Bar:
    return Bar(
        label,
        Decimal(row.get("cost") or 0),
        int(row.get("tokens") or 0),
        int(row.get("runs") or 0),
        int(row.get("unpriced") or 0),
    )


def rollup_for(user: Any) -> QuerySet[Any]:
    """The rollup rows a user may see: the all-users totals for operators (who can view all runs), else
    their own rows."""
    if user.has_perm("runs.view_run"):
        return UsageDayTotal.objects.order_by()
    return UsageDay.objects.order_by().filter(user=user)


def summary(rows: QuerySet[Any], user: Any, days: int = 30) -> dict[str, Any]:
    """The usage page's figures over the last `days` days (today included), in six queries."""
    today = timezone.localdate()
    recent = rows.filter(day__gt=today - timedelta(days=days))
    by_day = {row["day"]: row for row in recent.values("day").annotate(**_TOTALS)}
    daily = []
    for offset in range(days - 1, -1, -1):
        day: date = today - timedelta(days=offset)
        daily.append(_bar(day.strftime("%m-%d"), by_day.get(day, {})))
    per_workflow = [
        _bar(row["workflow__title"], row)
        for row in recent.values("workflow_id", "workflow__title").annotate(**_TOTALS).order_by("-cost", "workflow_id")
    ]
    providers: dict[str, Bar] = {}
    for row in recent.values("model").annotate(**_TOTALS).order_by("model"):
        name = (row["model"] or NOT_RUN).split("/")[0]  # refused before a model was chosen
        bar = providers.setdefault(name, Bar(name, Decimal(0), 0, 0))
        found = _bar(name, row)
        bar.cost += found.cost
        bar.tokens += found.tokens
        bar.runs += found.runs
        bar.unpriced += found.unpriced
    pass_rates = [
        PassRate(row["workflow__title"], row["model"], row["checked"], row["passed"])
        for row in recent.filter(checked_runs__gt=0)
        .values("workflow_id", "workflow__title", "model")
        .annotate(checked=Sum("checked_runs"), passed=Sum("passed_runs"))
        .order_by("workflow__title", "model")
    ]
    budget = UserBudget.objects.filter(user=user).first()
    # Today's spend for the budget counts runs still in progress, as the budget check does (one user, one
    # day: a short walk of the run_user_recent index).
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    spent_today = Decimal(Run.objects.filter(user=user, created_at__gte=start).aggregate(c=Sum("cost_usd"))["c"] or 0)
    by_tokens = not any(b.cost for b in daily)  # all free or unpriced: chart the tokens instead
    return {
        "days": days,
        "daily": _scale(daily, 20, by_tokens),
        "by_tokens": by_tokens,
        "per_workflow": per_workflow,
        "pass_rates": pass_rates,
        "per_provider": sorted(providers.values(), key=lambda b: (-b.cost, b.label)),
        "total_cost": sum((b.cost for b in daily), Decimal(0)),
        "total_tokens": sum(b.tokens for b in daily),
        "chart_height": CHART_HEIGHT,
        "chart_width": 20 * days + 40,
        "budget": budget,
        "spent_today": spent_today,
        "budget_left": (budget.daily_usd - spent_today) if budget else None,
    }
