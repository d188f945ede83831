"""django-q2 tasks. They take a run id (never an object or a secret) and call the service."""

from __future__ import annotations


def execute_run(run_id: str) -> str:
    """Wake this worker's run host: it claims queued runs (fairly, this one among them) while it has room,
    and returns at once so the worker process can host many runs."""
    from .host import current

    host = current()
    host.wake()
    return f"woke {host.name} ({host.free()} free of {host.capacity})"


def recover_stale_runs() -> str:
    from .host import hosted_here
    from .recovery import recover_stale_runs as recover

    return f"recovered {len(recover(alive=hosted_here()))}"


def purge_old_runs() -> str:
    from datetime import timedelta

    from django.conf import settings

    from .retention import purge_runs

    return f"purged {purge_runs(timedelta(days=settings.RETENTION_DAYS))}"
