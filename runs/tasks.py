"""django-q2 tasks. They take a run id (never an object or a secret) and call the service."""

from __future__ import annotations

from . import services


def execute_run(run_id: str) -> str:
    run = services.execute(run_id)
    return "skipped (already claimed or gone)" if run is None else run.status
