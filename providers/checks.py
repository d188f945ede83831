"""Validation's connection check: one at a time per connection, cancellable, paid by the platform.

A check is at most one minimal real call, skipped while the connection passed one in the last
CHECK_TTL_SECONDS. When it is due, the first run (in any worker process) claims it with a conditional UPDATE
on the connection row (`checking_until`); every other run validating on that connection meanwhile waits for
that answer instead of making its own call. The call streams on the run's own control, so a cancel or the
deadline ends it (or the wait) at once. Its cost is added once to the connection's `platform_cost_usd`: a
check is the platform's call, never charged to the run that happened to trigger it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from . import llm
from .models import ConnectionStatus, ProviderConnection
from .resolution import Target

CHECK_TTL_SECONDS = 300
LEASE_SECONDS = 60  # a claim whose holder died lapses after this; a live holder ends it sooner
WAIT_STEP = 0.2


@dataclass(frozen=True)
class CheckOutcome:
    usable: bool
    found: str  # what was found, in plain words
    result: llm.LLMResult | None = None  # the call this run made (None: skipped, or another run's call)


def _recent(connection: ProviderConnection) -> bool:
    recent = timezone.now() - timedelta(seconds=CHECK_TTL_SECONDS)
    return bool(connection.last_tested_at and connection.last_tested_at > recent)


def check_reachable(target: Target, control: llm.CallControl) -> CheckOutcome:
    """Whether the target's connection can be used now. Raises llm.Interrupted on cancel or deadline."""
    if target.is_offline or target.connection_id is None:
        return CheckOutcome(True, "built in")
    started = timezone.now()
    rows = ProviderConnection.objects.filter(pk=target.connection_id)
    while True:
        connection = rows.get()
        if connection.status == ConnectionStatus.CONNECTED and _recent(connection):
            return CheckOutcome(True, "checked recently")
        if connection.last_tested_at and connection.last_tested_at >= started and not connection.checking_until:
            # another run's check answered while this one waited
            usable = connection.status == ConnectionStatus.CONNECTED
            return CheckOutcome(usable, "checked by another run" if usable else connection.status_message)
        now = timezone.now()
        # Not if a check answered since this run began: the row read above may predate that answer (a check
        # that ended between the read and this UPDATE would otherwise be made twice).
        untested_since = Q(last_tested_at__isnull=True) | Q(last_tested_at__lt=started)
        claimed = rows.filter(untested_since, Q(checking_until__isnull=True) | Q(checking_until__lt=now)).update(
            checking_until=now + timedelta(seconds=LEASE_SECONDS)
        )
        if claimed:
            return _check(connection, target, control)
        if control.remaining() <= 0:
            raise llm.Interrupted("deadline", _nothing())
        if control.wait(WAIT_STEP):
            raise llm.Interrupted("cancelled", _nothing())


class _CheckControl(llm.CallControl):
    """The run's stop, deadline and watcher (its poll), without its streamed-text sink: the check's "OK" is
    not the run's output."""

    def __init__(self, run_control: llm.CallControl) -> None:
        super().__init__(stop=run_control.stop, deadline=run_control.deadline)
        self.run_control = run_control

    def poll(self, force: bool = False) -> None:
        self.run_control.poll(force)


def _nothing() -> llm.LLMResult:
    return llm.LLMResult(content="", tool_calls=[], prompt_tokens=0, completion_tokens=0, cost_usd=None, latency_ms=0)


def _check(connection: ProviderConnection, target: Target, control: llm.CallControl) -> CheckOutcome:
    from . import pricing

    rows = ProviderConnection.objects.filter(pk=connection.pk)
    messages = [{"role": "user", "content": "Reply with OK."}]
    check_control = _CheckControl(control)
    try:
        result = llm.complete(
            target, messages, max_tokens=1, timeout=20, price=pricing.price_of(target), control=check_control
        )
    except llm.Interrupted as cut:
        _pay(rows, cut.partial)
        rows.update(checking_until=None)
        raise
    except llm.ProviderError as exc:
        if exc.kind == "unknown_model":  # this run's model, not the connection, is wrong
            rows.update(checking_until=None)
            return CheckOutcome(False, exc.message)
        if exc.retryable:  # it answered, busy: the run's retry loop deals with that
            _remember(rows, True, f"Reachable, busy at the last check ({exc.kind}).")
            return CheckOutcome(True, f"busy ({exc.kind}); the run will retry")
        _remember(rows, False, f"{exc.message} Provider said: {exc.detail}" if exc.detail else exc.message)
        return CheckOutcome(False, exc.message)
    _pay(rows, result)
    _remember(rows, True, "Connected.")
    return CheckOutcome(True, "connected", result)


def _pay(rows: QuerySet[ProviderConnection], result: llm.LLMResult) -> None:
    if result.cost_usd:
        rows.update(platform_cost_usd=F("platform_cost_usd") + result.cost_usd)


def _remember(rows: QuerySet[ProviderConnection], ok: bool, message: str) -> None:
    """The outcome, and the claim released, in one UPDATE: waiting runs read both together."""
    rows.update(
        status=ConnectionStatus.CONNECTED if ok else ConnectionStatus.FAILED,
        status_message=message[:300],
        last_tested_at=timezone.now(),
        updated_at=timezone.now(),
        checking_until=None,
    )
