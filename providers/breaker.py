"""A circuit breaker per provider connection, kept in the database so every worker process shares it.

A connection that failed BREAKER_FAILURES times within BREAKER_WINDOW_SECONDS (unreachable, timing out,
server errors, garbled answers) is skipped for BREAKER_OPEN_SECONDS: runs go straight to their fallback
instead of paying retries and backoff on every step. Counting uses single UPDATE statements (F()
expressions), so concurrent workers never lose a failure.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from .errors import ProviderError
from .models import CircuitBreaker, ProviderConnection
from .resolution import Target

# Failures that say the provider is down, not that this request was wrong.
TRIPPING_KINDS = frozenset({"unreachable", "timeout", "server", "malformed", "dns", "tls"})


def _failures() -> int:
    return int(getattr(settings, "BREAKER_FAILURES", 3))


def _window() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "BREAKER_WINDOW_SECONDS", 60)))


def _open_for() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "BREAKER_OPEN_SECONDS", 30)))


def is_open(target: Target) -> bool:
    if target.connection_id is None:
        return False
    return CircuitBreaker.objects.filter(connection_id=target.connection_id, open_until__gt=timezone.now()).exists()


def skipped(target: Target) -> ProviderError:
    """The error a skipped connection stands for, so the run's reason still says what happened."""
    seconds = int(_open_for().total_seconds())
    return ProviderError(
        f"{target.model} was skipped: its provider failed repeatedly in the last minutes (paused for {seconds} s).",
        kind="breaker_open",
        retryable=False,
    )


def record(target: Target, error: ProviderError | None) -> None:
    """Count a failure that says the provider is down; a success closes the breaker."""
    if target.connection_id is None:
        return
    rows = CircuitBreaker.objects.filter(connection_id=target.connection_id)
    if error is None:
        rows.filter(failures__gt=0).update(failures=0, window_started_at=None)
        return
    if error.kind not in TRIPPING_KINDS:
        return
    now = timezone.now()
    counted = rows.filter(window_started_at__gt=now - _window()).update(failures=F("failures") + 1)
    if not counted:  # no row yet, or its window is over: this failure starts a new one
        CircuitBreaker.objects.update_or_create(
            connection_id=target.connection_id, defaults={"failures": 1, "window_started_at": now}
        )
    rows.filter(failures__gte=_failures()).update(open_until=now + _open_for(), failures=0, window_started_at=None)


def state_for(connection: ProviderConnection) -> str:
    """The breaker of one connection in words, for the Providers page ("closed", "open until 14:05:09",
    "2 recent failures"). Reads `connection.breaker` (select_related it for a list: one query in all)."""
    try:
        row = connection.breaker
    except CircuitBreaker.DoesNotExist:
        return "closed"
    now = timezone.now()
    if row.open_until and row.open_until > now:
        return f"open until {timezone.localtime(row.open_until):%H:%M:%S}: runs skip this connection"
    if row.failures and row.window_started_at and row.window_started_at > now - _window():
        return f"closed ({row.failures} recent failure{'s' if row.failures != 1 else ''})"
    return "closed"
