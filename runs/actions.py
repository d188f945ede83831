"""Which actions a run page offers now, each with the one line that says what it will do: one place for both.

Only the actions that apply are shown (no wall of greyed-out buttons). The one exception is a cancel
already asked for: it stays, disabled, as "Cancelling…" until the worker has stopped the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from . import progression
from .models import LLMCacheEntry, Mode, Run, Status
from .services import DISABLED, RESUMABLE


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    url: str
    reason: str = ""
    style: str = ""
    busy: bool = False  # shown disabled: the action is already under way


def for_run(run: Run, user: Any) -> list[Action]:
    def url(name: str) -> str:
        return reverse(f"runs:{name}", args=[run.pk])

    if not run.is_finished:
        if run.cancel_requested:
            return [
                Action("cancel", "Cancelling…", url("cancel"), "The run stops after its current call.", "danger", True)
            ]
        return [Action("cancel", "Cancel run", url("cancel"), style="danger")]

    if not run.workflow_version.workflow.enabled:  # one clear message instead of buttons that would refuse
        again = "Validate again" if run.mode == Mode.VALIDATE else "Run again"
        return [Action("rerun", again, url("rerun"), DISABLED, busy=True)]
    found: list[Action] = []
    if run.mode == Mode.VALIDATE and run.status == Status.SUCCEEDED:
        found.append(
            Action(
                "test", "Test run with these inputs", url("test"), "Runs every step under the test limits.", "primary"
            )
        )
    if run.mode == Mode.TEST and run.status == Status.SUCCEEDED:
        blocker = progression.full_run_blocker(run.workflow_version, run.inputs_hash, user=user, model=run.model_used)
        if blocker is None or progression.may_skip(user):
            found.append(
                Action(
                    "full",
                    "Run full with these inputs",
                    url("full"),
                    f"This passed test run unlocks a full run with the same inputs on {run.model_used}.",
                    "primary",
                )
            )
    done = len(run.step_outputs or {})
    if run.status in RESUMABLE and run.mode != Mode.VALIDATE and done:
        steps = f"{done} finished step{'s' if done != 1 else ''}"
        found.append(Action("resume", "Resume", url("resume"), f"Reuses the {steps} at no cost and runs the rest."))
    again = "Validate again" if run.mode == Mode.VALIDATE else "Run again"
    found.append(Action("rerun", again, url("rerun"), "A new run with the same inputs and models."))
    if run.workflow_version.spec.get("cache") and run.mode != Mode.VALIDATE:
        if LLMCacheEntry.objects.filter(run=run).exists():
            label, why = "Replay (cached answers free)", "Reuses this run's cached answers at no cost; a call not in "
            why += "the cache is made afresh at the model's price."
        else:  # nothing of this run is cached: a replay would ask the model and pay like any run
            label, why = "Replay", "Nothing of this run is cached, so a replay calls the model at its normal price."
        found.append(Action("replay", label, url("replay"), why))
    return found
