"""The Providers page's rows: each connection with its last success and last failure (its own tests and the
runs that used it), its breaker state and, after a test, the models its server lists. One query for the list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Max, Q, QuerySet

from providers.breaker import describe
from providers.models import ConnectionStatus, ProviderConnection
from runs.models import Status

FAILED_RUNS = Q(runs__status__in=(Status.FAILED, Status.STOPPED))


def _rows() -> QuerySet[ProviderConnection]:
    return (
        ProviderConnection.objects.select_related("breaker")
        .annotate(
            last_run_success=Max("runs__finished_at", filter=Q(runs__status=Status.SUCCEEDED)),
            last_run_failure=Max("runs__finished_at", filter=FAILED_RUNS),
        )
        .order_by("position", "provider", "label")
    )


def _latest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _decorate(connection: Any) -> Any:
    tested = connection.last_tested_at if connection.status != ConnectionStatus.UNTESTED else None
    ok = connection.status == ConnectionStatus.CONNECTED
    connection.last_success = _latest(connection.last_run_success, tested if ok else None)
    connection.last_failure = _latest(connection.last_run_failure, None if ok else tested)
    connection.breaker_state = describe(connection)
    return connection


def all_rows() -> list[ProviderConnection]:
    return [_decorate(c) for c in _rows()]


def one(connection: ProviderConnection, *, models: list[str] | None = None) -> ProviderConnection:
    row = _decorate(_rows().get(pk=connection.pk))
    row.server_models = models or []
    return row
