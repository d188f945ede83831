"""django-q2 tasks. They take a run id (never an object or a secret) and call the service."""

from __future__ import annotations

from . import services


def execute_run(run_id: str) -> str:
    run = services.execute(run_id)
    return "skipped (already claimed or gone)" if run is None else run.status


def recover_stale_runs() -> str:
    from .recovery import recover_stale_runs as recover

    return f"recovered {len(recover())}"


def purge_old_runs() -> str:
    from datetime import timedelta

    from django.conf import settings

    from .retention import purge_runs

    return f"purged {purge_runs(timedelta(days=settings.RETENTION_DAYS))}"
