"""Runs whose worker died: no heartbeat for a while means the run is marked failed and resumable."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import money, usage
from .models import Artifact, Run, Status
from .trace import FORMAT, now_iso

log = logging.getLogger(__name__)
LOST = "The worker stopped during the run (killed or crashed). Resume it to continue from the first unfinished step."


def recover_stale_runs(stale_seconds: int | None = None, alive: Iterable[str] = ()) -> list[str]:
    """Mark running runs without a recent heartbeat as failed (resumable), except those in `alive` (the
    caller's own runs). Returns their ids."""
    limit = timezone.now() - timedelta(seconds=stale_seconds or settings.RUN_STALE_SECONDS)
    recovered = []
    stale = Run.objects.filter(status=Status.RUNNING, heartbeat_at__lt=limit).exclude(pk__in=list(alive))
    for run_id in stale.values_list("pk", flat=True):
        changed = Run.objects.filter(pk=run_id, status=Status.RUNNING, heartbeat_at__lt=limit).update(
            status=Status.FAILED, reason=LOST, finished_at=timezone.now(), current_step=""
        )
        if changed:
            money.settle(run_id)  # what it spent stays counted; what it still held is released
            usage.record_finished(Run(pk=run_id))
            _note_in_trace(run_id)
            recovered.append(str(run_id))
    if recovered:
        log.warning("recovered %d stale run(s): %s", len(recovered), ", ".join(recovered))
    return recovered


def _note_in_trace(run_id: Any) -> None:
    if Artifact.objects.filter(run_id=run_id, name="trace.json").exists():
        return
    run = Run.objects.get(pk=run_id)
    document = {
        "format": FORMAT,
        "run": {"id": str(run.pk), "status": run.status, "reason": run.reason, "steps_done": run.steps_done},
        "events": [{"at": now_iso(), "kind": "recovered", "message": LOST}],
    }
    Artifact.write(run, "trace.json", json.dumps(document, indent=2))
