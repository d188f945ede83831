"""A circuit breaker per provider connection, shared by every worker process through the database.

It opens only on a sustained failure ratio: at least BREAKER_FAILURE_RATIO of at least BREAKER_MIN_CALLS calls
in the last BREAKER_WINDOW_SECONDS failed in a way that says the provider is down (unreachable, timing out,
server errors, garbled answers). A busy provider (429: rate limiting, with its own Retry-After), a wrong request,
a cancel, a deadline or our own shutdown never counts. Open, it sends no call for BREAKER_OPEN_SECONDS; then
one probe call, claimed by a conditional UPDATE so only one process sends it, closes it or opens it again.

No query per call: each process counts in memory and, at most every BREAKER_SYNC_SECONDS per connection, adds
its counts to the shared slice rows (F() increments), reads the window's sums and the open state, and opens
the breaker with one conditional UPDATE when the ratio is reached.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from .errors import ProviderError
from .models import BreakerCount, CircuitBreaker, ProviderConnection
from .resolution import Target

# Failures that say the provider is down, not that this request was wrong.
TRIPPING_KINDS = frozenset({"unreachable", "timeout", "server", "malformed", "dns", "tls"})
SLICES = 6  # the window is summed from this many slices


class Gate:
    CLOSED = "closed"  # call
    PROBE = "probe"  # call: this call is the one probe of a half-open breaker
    OPEN = "open"  # do not call


@dataclass(frozen=True)
class BreakerState:
    """What the Providers page shows for one connection."""

    state: str  # "closed", "open" or "half_open"
    calls: int  # in the current window, every process's
    failures: int
    open_until: datetime | None


@dataclass
class _Local:
    """One process's view of one connection: counts not yet written, and the shared state last read."""

    calls: int = 0
    failures: int = 0
    synced: float = float("-inf")  # time.monotonic() of the last sync
    open_until: float | None = None  # unix time
    lock: threading.Lock = field(default_factory=threading.Lock)


_locals: dict[int, _Local] = {}
_locals_lock = threading.Lock()


def now() -> float:
    """Wall-clock seconds (a function so tests can move time)."""
    return time.time()


def _setting(name: str) -> float:
    return float(getattr(settings, name))


def _slice_seconds() -> float:
    return max(1.0, _setting("BREAKER_WINDOW_SECONDS") / SLICES)


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _local(connection_id: int) -> _Local:
    with _locals_lock:
        return _locals.setdefault(connection_id, _Local())


def reset_local() -> None:
    """Forget this process's counts and cached state (tests; a forked process starts clean anyway)."""
    with _locals_lock:
        _locals.clear()


def _probe_lease() -> float:
    return _setting("PROVIDER_CONNECT_SECONDS") + _setting("PROVIDER_FIRST_BYTE_SECONDS") + 30


# -- the shared rows --------------------------------------------------------------------------------------
def _add_counts(connection_id: int, calls: int, failures: int, at: float) -> None:
    start = int(at // _slice_seconds() * _slice_seconds())
    rows = BreakerCount.objects.filter(connection_id=connection_id, slice_start=start)
    add = {"calls": F("calls") + calls, "failures": F("failures") + failures}
    if rows.update(**add):
        return
    try:
        with transaction.atomic():
            BreakerCount.objects.create(connection_id=connection_id, slice_start=start, calls=calls, failures=failures)
    except IntegrityError:  # another process created the slice meanwhile
        rows.update(**add)


def _window_sums(connection_id: int, at: float) -> tuple[int, int]:
    since = at - _setting("BREAKER_WINDOW_SECONDS")
    sums = BreakerCount.objects.filter(connection_id=connection_id, slice_start__gt=since - _slice_seconds()).aggregate(
        calls=Sum("calls"), failures=Sum("failures")
    )
    return int(sums["calls"] or 0), int(sums["failures"] or 0)


def _tripped(calls: int, failures: int) -> bool:
    return calls >= _setting("BREAKER_MIN_CALLS") and failures >= calls * _setting("BREAKER_FAILURE_RATIO")


def _open(connection_id: int, at: float) -> None:
    """Open the breaker unless it is open already (one conditional UPDATE), and start the count again."""
    until = _dt(at + _setting("BREAKER_OPEN_SECONDS"))
    CircuitBreaker.objects.get_or_create(connection_id=connection_id)
    opened = CircuitBreaker.objects.filter(
        Q(open_until__isnull=True) | Q(open_until__lte=_dt(at)), connection_id=connection_id
    ).update(open_until=until, probe_until=None)
    if opened:
        BreakerCount.objects.filter(connection_id=connection_id).delete()


def _sync(connection_id: int, local: _Local) -> None:
    """Write this process's counts, then read the shared window and state (the only queries it makes)."""
    at = now()
    with local.lock:
        calls, failures, local.calls, local.failures = local.calls, local.failures, 0, 0
        local.synced = time.monotonic()
    if calls:
        _add_counts(connection_id, calls, failures, at)
        # Slices older than two windows are of no use to anyone.
        BreakerCount.objects.filter(
            connection_id=connection_id, slice_start__lt=at - 2 * _setting("BREAKER_WINDOW_SECONDS")
        ).delete()
        if failures and _tripped(*_window_sums(connection_id, at)):
            _open(connection_id, at)
    row = CircuitBreaker.objects.filter(connection_id=connection_id).values_list("open_until", flat=True).first()
    local.open_until = row.timestamp() if row else None


# -- what the retry loop calls ----------------------------------------------------------------------------
def admit(target: Target) -> tuple[str, float]:
    """May a call go to this target now? (Gate, seconds to wait before asking again when it may not)."""
    if target.connection_id is None:
        return Gate.CLOSED, 0.0
    local = _local(target.connection_id)
    if time.monotonic() - local.synced >= _setting("BREAKER_SYNC_SECONDS"):
        _sync(target.connection_id, local)
    at = now()
    if local.open_until is None:
        return Gate.CLOSED, 0.0
    if local.open_until > at:
        return Gate.OPEN, local.open_until - at
    # Half-open: one probe, whichever process claims it first.
    claimed = CircuitBreaker.objects.filter(
        Q(probe_until__isnull=True) | Q(probe_until__lt=_dt(at)),
        connection_id=target.connection_id,
        open_until__lte=_dt(at),
    ).update(probe_until=_dt(at + _probe_lease()))
    if claimed:
        return Gate.PROBE, 0.0
    _sync(target.connection_id, local)  # closed meanwhile, or another process is probing
    return (Gate.CLOSED, 0.0) if local.open_until is None else (Gate.OPEN, 0.5)


def counts(error: ProviderError | None) -> bool:
    """Whether an outcome says anything about the provider being up: a success or a tripping failure."""
    return error is None or error.kind in TRIPPING_KINDS


def record(target: Target, error: ProviderError | None, *, probe: bool = False) -> None:
    """One call's outcome. A probe's outcome decides at once; others are counted and written in batches."""
    if target.connection_id is None:
        return
    if probe:
        _probe_outcome(target.connection_id, error)
        return
    if not counts(error):
        return
    local = _local(target.connection_id)
    with local.lock:
        local.calls += 1
        local.failures += error is not None
    if time.monotonic() - local.synced >= _setting("BREAKER_SYNC_SECONDS"):
        _sync(target.connection_id, local)


def release(target: Target) -> None:
    """A probe that ended without an answer about the provider (cancel, deadline, 429): another may probe."""
    if target.connection_id is not None:
        CircuitBreaker.objects.filter(connection_id=target.connection_id).update(probe_until=None)


def _probe_outcome(connection_id: int, error: ProviderError | None) -> None:
    rows = CircuitBreaker.objects.filter(connection_id=connection_id)
    if error is None:
        rows.update(open_until=None, probe_until=None)
        BreakerCount.objects.filter(connection_id=connection_id).delete()
    elif error.kind in TRIPPING_KINDS:
        rows.update(open_until=_dt(now() + _setting("BREAKER_OPEN_SECONDS")), probe_until=None)
    else:
        rows.update(probe_until=None)
    _sync(connection_id, _local(connection_id))


def skipped(target: Target, wait: float | None = None) -> ProviderError:
    """The error a skipped connection stands for, so the run's reason still says what happened."""
    more = f" for another {wait:.0f} s" if wait else ""
    return ProviderError(
        f"{target.model} was skipped: most recent calls to its provider failed, so it is paused{more}.",
        kind="breaker_open",
        retryable=False,
    )


def state_for(connection: Any) -> BreakerState:
    """The breaker of a connection (a ProviderConnection or its id) as every process sees it."""
    connection_id = getattr(connection, "pk", connection)
    at = now()
    calls, failures = _window_sums(connection_id, at)
    row = CircuitBreaker.objects.filter(connection_id=connection_id).values("open_until").first()
    open_until = row["open_until"] if row else None
    if open_until is None:
        state = "closed"
    elif open_until.timestamp() > at:
        state = "open"
    else:
        state = "half_open"
    return BreakerState(state=state, calls=calls, failures=failures, open_until=open_until)


def is_open(target: Target) -> bool:
    """Whether calls to this target are held back now (open, or half-open with its probe elsewhere)."""
    return target.connection_id is not None and state_for(target.connection_id).state != "closed"


def describe(connection: ProviderConnection) -> str:
    """The breaker of one connection in words, for the Providers page ("closed", "open until 14:05:09").
    Reads `connection.breaker` (select_related it for a list: one query in all)."""
    try:
        row = connection.breaker
    except CircuitBreaker.DoesNotExist:
        return "closed"
    if row.open_until is None:
        return "closed"
    if row.open_until.timestamp() > now():
        return f"open until {timezone.localtime(row.open_until):%H:%M:%S}: runs wait for its probe call"
    return "half-open: the next call is a probe"
