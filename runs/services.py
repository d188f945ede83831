"""Writes to runs: starting, cancelling, executing. Views, tasks and commands all call these."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from catalog import inputs as run_inputs
from catalog.access import can_author
from catalog.file_inputs import Upload
from catalog.models import WorkflowVersion
from providers.resolution import ModelNotAvailable, offered_models
from settings_app import audit
from settings_app.models import AuditAction

from . import dispatch, money, pipeline, progression, usage
from . import files as run_files
from .models import FINISHED, Mode, Run, Status

log = logging.getLogger(__name__)


class RunRefused(Exception):
    """The run cannot start; the message says why in plain words."""


class QueueFull(RunRefused):
    """The user already has as many queued and running runs as allowed (HTTP 429 on the web)."""


class FullRunLocked(RunRefused):
    """No passed test run with these inputs yet (HTTP 409 in the API)."""


class ModelRefused(ModelNotAvailable, RunRefused):
    """A model the workflow does not offer, or a malformed name (HTTP 422 invalid_model in the API; a
    refusal like any other on the pages)."""


def checked_models(version: WorkflowVersion, models: list[str] | None) -> list[str]:
    """The models a new run may record: providers.resolution.offered_models for every entry point."""
    try:
        return offered_models(version.spec, list(models or []))
    except ModelNotAvailable as exc:
        raise ModelRefused(str(exc)) from None


DISABLED = "This workflow is disabled by an operator: it cannot run, resume, rerun or replay until it is enabled."
DRAFT_REFUSED = "This version of the workflow is a draft: only operators can run it."


def _switched_off(version: WorkflowVersion) -> bool:
    return not version.workflow.enabled


def refusal_before_start(run: Run) -> str | None:
    """Why a queued run must not start now that a worker claims it (an operator disabled it meanwhile), or None."""
    version = WorkflowVersion.objects.select_related("workflow").get(pk=run.workflow_version_id)
    return DISABLED if _switched_off(version) else None


def enqueue(run: Run) -> None:
    """Wake the cluster once the row is committed. The Run table is the queue: the task carries only the id,
    and whichever worker host has a free slot claims the next run fairly (runs/host.py)."""
    from django_q.tasks import async_task

    run_id = str(run.pk)
    transaction.on_commit(lambda: async_task("runs.tasks.execute_run", run_id, task_name=f"run-{run_id}", group="runs"))


def active_limit(user: Any) -> int:
    """Queued + running runs the user may have at once: the operator's per-user setting, else the site's."""
    budget = getattr(user, "budget", None) if getattr(user, "pk", None) else None
    per_user = getattr(budget, "max_active_runs", None) if budget is not None else None
    return per_user if per_user is not None else settings.RUNS_ACTIVE_PER_USER


def _check_fair_use(user: Any) -> None:
    """Called inside the transaction that creates the run, after locking the user's row, so two submissions
    at once cannot both pass (SQLite serialises writers; PostgreSQL holds the row lock)."""
    if not getattr(user, "pk", None):
        return
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    limit = active_limit(user)
    if dispatch.active_runs(user) >= limit:
        raise QueueFull(
            f"You already have {limit} runs queued or running, the most allowed at once. Wait for one to finish "
            "or cancel one, then try again."
        )


def _check_draft_run(version: WorkflowVersion, user: Any, mode: str) -> None:
    """A draft is for its authors to try: operators may validate and test it; nobody runs it in full."""
    if not can_author(user):
        raise RunRefused(DRAFT_REFUSED)
    if mode == Mode.FULL:
        raise RunRefused(f"Version {version.number} is a draft: publish it before a full run.")


def start_run(
    *,
    workflow_version: WorkflowVersion,
    user: Any,
    inputs: dict[str, Any],
    mode: str,
    models: list[str] | None = None,
    budget_usd: Decimal | None = None,
    skip_progression: bool = False,
    queue: bool = True,
    replay: bool = False,
    replay_of: Run | None = None,
    files: dict[str, Upload] | None = None,
) -> Run:
    """Check and create a queued run. Raises InputError for bad inputs, RunRefused for refusals.
    A replay (`replay`, best with `replay_of`: the run whose answers it reuses) reads the response cache.
    `files` holds the bytes of the files the inputs name, by SHA-256 (runs/files.py)."""
    if mode not in Mode.values:
        raise RunRefused(f"Unknown mode '{mode}': use validate, test or full.")
    if _switched_off(workflow_version):
        raise RunRefused(DISABLED)
    if workflow_version.is_draft:
        _check_draft_run(workflow_version, user, mode)
    models = checked_models(workflow_version, models)
    clean = run_inputs.validate(workflow_version.input_schema, inputs)
    run_files.check_backed(workflow_version.input_schema, clean, files or {})
    digest = run_inputs.inputs_hash(clean)
    caps_budget = Decimal(str(workflow_version.caps(Mode.TEST if mode == Mode.VALIDATE else mode)["budget_usd"]))
    if budget_usd is not None and budget_usd > caps_budget:
        raise RunRefused(f"A budget can only be lowered: this workflow allows at most ${caps_budget} for a {mode} run.")
    skipped, unlocked_by = False, None
    if mode == Mode.FULL:
        model = progression.intended_model(workflow_version.spec, models)
        unlocked_by = progression.unlocking_test(workflow_version, digest, user=user, model=model)
        if unlocked_by is None:
            if not (skip_progression and progression.may_skip(user)):
                raise FullRunLocked(progression.full_run_blocker(workflow_version, digest, user=user, model=model))
            skipped = True
    with transaction.atomic():
        if mode != Mode.VALIDATE or queue:
            _check_fair_use(user)
        run = Run.objects.create(
            user=user,
            workflow_version=workflow_version,
            mode=mode,
            inputs=clean,
            inputs_hash=digest,
            requested_models=list(models or []),
            budget_usd=budget_usd,
            replay=replay or replay_of is not None,
            replay_of=replay_of,
            unlocked_by=unlocked_by,
            steps_total=0 if mode == Mode.VALIDATE else len(workflow_version.spec["steps"]),
        )
        run_files.attach(run, workflow_version.input_schema, files or {})
        if skipped:
            audit.record(AuditAction.PROGRESSION_SKIPPED, run, actor=user, workflow=workflow_version.workflow.slug)
        if queue:
            enqueue(run)
    return run


RESUMABLE = (Status.FAILED, Status.CANCELLED, Status.STOPPED)


def resume_run(run: Run, *, queue: bool = True, actor: Any = None, ip: str | None = None) -> Run:
    """A new run that continues from the first unfinished step: finished steps' outputs are reused, not paid,
    and what the chain already spent counts against the resumed run's budget (no fresh budget by resuming)."""
    if run.status not in RESUMABLE or run.mode == Mode.VALIDATE:
        raise RunRefused("Only a failed, cancelled or stopped test or full run can be resumed.")
    if _switched_off(run.workflow_version):
        raise RunRefused(DISABLED)
    models = checked_models(run.workflow_version, run.requested_models)
    spent = money.chain_spent(run)
    budget = money.budget_of(run, run.workflow_version.caps(run.mode))
    if spent >= budget:
        raise RunRefused(
            f"This run and the runs it resumes already spent {money.format_usd(spent)} of its "
            f"{money.format_usd(budget)} budget, so it cannot be resumed into a fresh one: start a new run instead."
        )
    done = dict(run.step_outputs or {})
    with transaction.atomic():
        _check_fair_use(run.user)
        resumed = Run.objects.create(
            user=run.user,
            workflow_version=run.workflow_version,
            mode=run.mode,
            inputs=run.inputs,
            inputs_hash=run.inputs_hash,
            requested_models=models,
            budget_usd=run.budget_usd,
            resumed_from=run,
            chain_spent_usd=spent,
            step_outputs=done,
            steps_done=len(done),
            steps_total=run.steps_total,  # a resume asks the model, even when it continues a replay
        )
        run_files.attach(resumed, run.workflow_version.input_schema, run_files.blobs_of(run))
        record_on_behalf(run, actor=actor, ip=ip, did="resumed", new_run=str(resumed.pk))
        if queue:
            enqueue(resumed)
    return resumed


def start_from(run: Run, *, user: Any, mode: str) -> Run:
    """A new run of the same version, inputs and models in another mode: a run page's "Test run with these
    inputs" and "Run full" (web and API). A full run asks first the model that answered the test."""
    models = list(run.requested_models)
    if mode == Mode.FULL and run.model_used:
        models = [run.model_used, *(m for m in models if m != run.model_used)]
    return start_run(
        workflow_version=run.workflow_version,
        user=user,
        inputs=run.inputs,
        mode=mode,
        models=models,
        files=run_files.blobs_of(run),
    )


def rerun(run: Run, *, user: Any, replay: bool = False, queue: bool = True) -> Run:
    """A new run with the same version, inputs and models. A Rerun asks the model afresh; a Replay reuses the
    answers `run` stored (or, for a replay of a replay, those of the run it replayed) at no cost."""
    return start_run(
        workflow_version=run.workflow_version,
        user=user,
        inputs=run.inputs,
        mode=run.mode,
        models=run.requested_models,
        budget_usd=run.budget_usd,
        queue=queue,
        replay_of=(run.replay_of or run) if replay else None,
        files=run_files.blobs_of(run),
    )


def execute(
    run_id: Any, on_progress: pipeline.Progress | None = None, on_text: pipeline.Progress | None = None
) -> Run | None:
    """Execute a queued run in this process; `on_text` receives the model's text as it streams."""
    return pipeline.execute(run_id, on_progress, on_text)


def record_on_behalf(run: Run, *, actor: Any, ip: str | None, did: str, **detail: Any) -> None:
    """Operators may cancel and resume anyone's run (the owner is charged, as for their own resume): the
    audit log keeps who did it, and the run page shows it (acts_on_behalf)."""
    if getattr(actor, "pk", None) and actor.pk != run.user_id:
        audit.record(AuditAction.CHANGED, run, actor=actor, ip=ip, did=did, owner=run.user.get_username(), **detail)


def acts_on_behalf(run: Run) -> list[Any]:
    """What someone other than the owner did to this run or made it from (newest last), for its page."""
    from settings_app.models import AuditEvent

    ids = [str(run.pk)] + ([str(run.resumed_from_id)] if run.resumed_from_id else [])
    events = AuditEvent.objects.filter(target_type=Run._meta.label, target_id__in=ids, detail__has_key="did")
    return list(events.order_by("at"))


def request_cancel(run: Run, *, actor: Any = None, ip: str | None = None) -> bool:
    """Ask a run to stop. A queued run stops at once; a running one within a moment of its current call."""
    if run.is_finished:
        return False
    record_on_behalf(run, actor=actor, ip=ip, did="cancelled")
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    stopped = Run.objects.filter(pk=run.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, reason="Cancelled before it started.", finished_at=timezone.now()
    )
    run.refresh_from_db()
    if stopped:
        money.settle(run)
        usage.record_finished(run)
    return bool(stopped) or run.status not in FINISHED
