"""Guarantees the mutation audit of issue 21 found unprotected: each test here fails with its mutant (named in
the test's docstring) and passes on the code as it is."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from providers.models import ProviderConnection
from runs import money, progression
from runs.models import Mode, Run, Status, UserBudget

from .factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED, Status.STOPPED, Status.RUNNING])
def test_a_test_run_that_did_not_pass_never_unlocks_a_full_run(status):
    """P4: the progression's status filter dropped, any test run unlocks Full."""
    test_run = RunFactory(mode=Mode.TEST, status=status, finished_at=timezone.now())
    full = RunFactory(user=test_run.user, workflow_version=test_run.workflow_version, mode=Mode.FULL)
    assert progression.full_run_blocker(
        full.workflow_version, full.inputs_hash, user=full.user, exclude=full.pk, model=test_run.model_used
    )
    Run.objects.filter(pk=test_run.pk).update(status=Status.SUCCEEDED)
    assert not progression.full_run_blocker(
        full.workflow_version, full.inputs_hash, user=full.user, exclude=full.pk, model=test_run.model_used
    )


def _spent(user, connection, cost: str) -> Run:
    return RunFactory(
        user=user, status=Status.SUCCEEDED, cost_usd=Decimal(cost), connection=connection, finished_at=timezone.now()
    )


def test_the_monthly_connection_budget_counts_every_user_together():
    """M6: the month's spend counted per user, so several users together pass the connection's budget."""
    connection = ProviderConnection.objects.create(provider="openai", label="Shared", monthly_budget_usd=Decimal("1"))
    _spent(UserFactory(), connection, "0.40")
    _spent(UserFactory(), connection, "0.40")
    run = RunFactory(user=UserFactory())
    refusal = money.reserve(run, connection.pk, Decimal("0.30"))
    assert refusal and "monthly budget" in refusal


@pytest.mark.parametrize(("estimate", "refused"), [("0.30", False), ("0.31", True)])
def test_a_run_exactly_at_the_daily_budget_passes_and_one_cent_over_is_refused(estimate, refused):
    """M1/M7: the budget comparisons turned to >= (exactly at the budget refused) or given a cent of slack."""
    user = UserFactory()
    UserBudget.objects.create(user=user, daily_usd=Decimal("1.00"))
    _spent(user, None, "0.70")
    run = RunFactory(user=user)
    assert bool(money.reserve(run, None, Decimal(estimate))) is refused


@pytest.mark.parametrize(("estimate", "refused"), [("0.30", False), ("0.31", True)])
def test_a_run_exactly_at_the_monthly_connection_budget_passes_and_one_cent_over_is_refused(estimate, refused):
    """M1/M7 for the connection's month."""
    connection = ProviderConnection.objects.create(provider="openai", label="Edge", monthly_budget_usd=Decimal("1"))
    _spent(UserFactory(), connection, "0.70")
    run = RunFactory(user=UserFactory())
    assert bool(money.reserve(run, connection.pk, Decimal(estimate))) is refused
