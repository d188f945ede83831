"""Which buttons a run page offers, and why a button is disabled: one place for both."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from .models import Mode, Run, Status
from .services import RESUMABLE


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    url: str
    enabled: bool
    reason: str = ""
    style: str = ""


def for_run(run: Run) -> list[Action]:
    def url(name: str) -> str:
        return reverse(f"runs:{name}", args=[run.pk])

    finished, caching = run.is_finished, bool(run.workflow_version.spec.get("cache"))
    resumable = run.status in RESUMABLE and run.mode != Mode.VALIDATE
    return [
        Action("cancel", "Cancel run", url("cancel"), not finished, "The run has ended." if finished else "", "danger"),
        Action(
            "resume",
            "Resume",
            url("resume"),
            resumable,
            "" if resumable else "Only a failed, cancelled or stopped run can be resumed.",
        ),
        Action("rerun", "Rerun", url("rerun"), finished, "" if finished else "Wait until the run has ended."),
        Action(
            "replay",
            "Replay (no cost)",
            url("replay"),
            finished and caching,
            ""
            if finished and caching
            else ("This workflow does not cache responses." if finished else "Wait until the run has ended."),
        ),
        Action(
            "full",
            "Run full with these inputs",
            url("full"),
            run.mode == Mode.TEST and run.status == Status.SUCCEEDED,
            ""
            if run.mode == Mode.TEST and run.status == Status.SUCCEEDED
            else "A full run unlocks when a test run with these inputs has succeeded.",
            "primary",
        ),
    ]
