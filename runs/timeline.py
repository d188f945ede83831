"""The run page's story: one entry per step (validation first) with its status, time, cost, tools and output.

Built from what the run row holds while it runs (current step, step outputs, live output) and from
trace.json once it has ended (per-call tokens, cost, tool calls, timings; the trace is already redacted).
Prompts are rebuilt from the spec with the run's own inputs and outputs, as the pipeline built them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db.models import TextChoices
from django.utils import timezone

from catalog import inputs as run_inputs
from catalog import templating
from catalog.access import skill_by_ref
from catalog.models import Skill, SkillVersion
from providers.offline import MODEL as OFFLINE_MODEL
from providers.redaction import redact

from . import prompts
from .models import Artifact, Mode, Run, Status

if TYPE_CHECKING:
    from .artifacts import KeptArtifact
from .money import describe_cost, format_usd
from .rendering import markdown_to_html

MAX_OUTPUT_CHARS = 20000
MAX_TRACE_BYTES = 4 * 1024 * 1024


class StepState(TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not run"
    CANCELLED = "cancelled", "Cancelled"


@dataclass
class ToolUse:
    name: str
    arguments: str
    outcome: str


@dataclass
class StepView:
    id: str
    title: str
    state: StepState
    seconds: int | None = None
    tokens: int | None = None
    cost_usd: Decimal | None = None
    unpriced: bool = False
    tool_calls: list[ToolUse] = field(default_factory=list)
    output_html: str = ""
    live_text: str = ""
    prompt: str = ""
    raw_response: str = ""
    note: str = ""
    cost_text: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)  # the quality checks' results (runs/checks.py)
    events: list[str] = field(default_factory=list)  # retries, fallbacks, breaker skips, waits, as they happened
    elapsed: int | None = None  # a running step's own time so far
    partial_text: str = ""  # what a cancelled or failed step had streamed before it stopped

    @property
    def tool_count(self) -> int:
        return len(self.tool_calls)


def read_trace(run: Run, artifacts: Sequence[Artifact | KeptArtifact]) -> dict[str, Any]:
    """The run's trace.json as a dict ({} before the run has ended or when it cannot be read)."""
    trace = next((a for a in artifacts if a.name == "trace.json"), None)
    if trace is None or trace.size > MAX_TRACE_BYTES:  # a huge trace stays a download, not a page
        return {}
    try:
        with trace.file.open("rb") as handle:
            data = json.loads(handle.read().decode("utf-8", errors="replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def elapsed_seconds(run: Run) -> int | None:
    if run.started_at is None:
        return None
    end = run.finished_at or timezone.now()
    return max(0, int((end - run.started_at).total_seconds()))


def build(run: Run, trace: dict[str, Any]) -> list[StepView]:
    traced = {str(entry.get("id")): entry for entry in trace.get("steps", []) if isinstance(entry, dict)}
    outputs = run.step_outputs or {}
    validation = _validation(run, traced, outputs)
    views = [validation]
    if run.mode == Mode.VALIDATE:
        return views
    skills = _skills(run) if outputs or run.current_step or traced else {}
    events: dict[str, list[str]] = {}
    for event in run.timeline_events or []:
        if isinstance(event, dict):
            events.setdefault(str(event.get("step", "")), []).append(redact(str(event.get("text", ""))))
    validation.events = events.get("", [])
    stopped = run.is_finished and run.status != Status.SUCCEEDED and validation.state == StepState.DONE
    for step in run.workflow_version.spec["steps"]:
        state = _state(run, step, traced, outputs, validation)
        if stopped and state == StepState.SKIPPED:  # the first step not done is where the run stopped
            state = StepState.CANCELLED if run.status == Status.CANCELLED else StepState.FAILED
            stopped = False
        elif state in (StepState.FAILED, StepState.CANCELLED):
            stopped = False
        view = StepView(id=step["id"], title=step["title"], state=state)
        view.events = events.get(step["id"], [])
        entry = traced.get(step["id"])
        if entry:
            _add_trace(view, entry)
        if step["id"] in outputs:
            text = redact(outputs[step["id"]][:MAX_OUTPUT_CHARS])
            view.output_html = markdown_to_html(text)
            view.raw_response = text
            if entry is None and run.resumed_from_id and run.is_finished:
                view.note = "Reused from the run this one resumes."
        elif view.state == StepState.RUNNING:
            view.live_text = redact(run.live_output[-MAX_OUTPUT_CHARS:])
            view.tokens = run.live_tokens or None
            view.elapsed = _since(run.step_started_at) if run.step_started_at else elapsed_seconds(run)
        elif view.state in (StepState.CANCELLED, StepState.FAILED) and entry:
            view.partial_text = _partial(entry)
        if view.state in (StepState.DONE, StepState.RUNNING, StepState.FAILED, StepState.CANCELLED):
            view.prompt = _prompt(run, step, skills)
        if view.state in (StepState.FAILED, StepState.CANCELLED):
            view.note = run.reason  # where and why the run stopped
        if view.state != StepState.RUNNING and (view.tokens is not None or entry):
            # A running step's cost is known when its call ends; a step that made no call was not run.
            offline = run.model_used == OFFLINE_MODEL
            ran = bool(view.tokens) or view.cost_usd is not None
            view.cost_text = describe_cost(view.cost_usd, unpriced=view.unpriced, free=offline, ran=ran)
        views.append(view)
    if run.workflow_version.spec.get("checks"):
        views.append(_quality(run, trace))
    return views


def _quality(run: Run, trace: dict[str, Any]) -> StepView:
    """The quality checks, a step of their own after the workflow's steps."""
    view = StepView(id="checks", title="Quality checks", state=StepState.QUEUED, checks=list(run.check_results or []))
    if run.checks_passed is not None:
        view.state = StepState.DONE if run.checks_passed else StepState.FAILED
        passed = sum(1 for c in view.checks if c.get("passed"))
        view.note = f"{passed} of {len(view.checks)} checks passed."
        judged = [c.get("call") for c in trace.get("checks", []) if isinstance(c, dict) and c.get("call")]
        if judged:
            _add_trace(view, {"calls": judged})
            offline = run.model_used == OFFLINE_MODEL  # the same words as the steps' costs ("free", "$0.0004")
            view.cost_text = describe_cost(view.cost_usd, unpriced=view.unpriced, free=offline)
    elif run.status == Status.RUNNING and run.current_step == "Quality checks":
        view.state = StepState.RUNNING
    elif run.is_finished:
        view.state = StepState.SKIPPED
    return view


def _validation(run: Run, traced: dict[str, Any], outputs: dict[str, Any]) -> StepView:
    view = StepView(id="validate", title="Validate inputs, model, cost and budget", state=StepState.QUEUED)
    started_steps = bool(traced or outputs) or (run.current_step not in ("", "Validate"))
    if run.status == Status.QUEUED:
        view.state = StepState.QUEUED
    elif run.status == Status.RUNNING:
        view.state = StepState.RUNNING if run.current_step in ("", "Validate") else StepState.DONE
    elif started_steps or run.status == Status.SUCCEEDED:
        view.state = StepState.DONE
    elif run.status == Status.CANCELLED:
        view.state = StepState.CANCELLED
    else:
        view.state = StepState.FAILED
        view.note = run.reason
    if view.state == StepState.DONE and run.model_used:
        if run.model_used == OFFLINE_MODEL:
            view.note = f"Model {run.model_used}: free, an offline demo."
        else:
            view.note = f"Model {run.model_used}; estimated cost at most {format_usd(run.estimated_cost_usd)}."
    return view


def _state(
    run: Run, step: dict[str, Any], traced: dict[str, Any], outputs: dict[str, Any], validation: StepView
) -> StepState:
    if step["id"] in outputs:
        return StepState.DONE
    if run.status == Status.QUEUED or validation.state == StepState.RUNNING:
        return StepState.QUEUED
    if run.status == Status.RUNNING:
        return StepState.RUNNING if run.current_step == step["title"] else StepState.QUEUED
    entry = traced.get(step["id"])
    if entry and entry.get("status") != "done":  # the step the run ended in
        return StepState.CANCELLED if run.status == Status.CANCELLED else StepState.FAILED
    return StepState.SKIPPED


def _add_trace(view: StepView, entry: dict[str, Any]) -> None:
    calls = [c for c in entry.get("calls", []) if isinstance(c, dict)]
    view.tokens = sum(int(c.get("prompt_tokens") or 0) + int(c.get("completion_tokens") or 0) for c in calls)
    costs = [_decimal(c.get("cost_usd")) for c in calls if c.get("model")]
    view.unpriced = any(cost is None for cost in costs)
    view.cost_usd = sum((c for c in costs if c is not None), Decimal(0)) if costs else None
    view.seconds = _seconds(entry.get("started_at"), entry.get("finished_at"))
    for call in calls:
        for tool in call.get("tool_calls", []) or []:
            outcome = tool.get("error") or tool.get("result") or ""
            if isinstance(outcome, dict):
                outcome = ", ".join(f"{key}: {value}" for key, value in outcome.items())
            view.tool_calls.append(
                ToolUse(
                    name=str(tool.get("name", "")), arguments=str(tool.get("arguments", ""))[:300], outcome=str(outcome)
                )
            )


def _since(moment: datetime) -> int:
    return max(0, int((timezone.now() - moment).total_seconds()))


def _partial(entry: dict[str, Any]) -> str:
    """The text the step's last call streamed before a cancel or a deadline cut it (the trace keeps it)."""
    calls = [c for c in entry.get("calls", []) if isinstance(c, dict)]
    for call in reversed(calls):
        if call.get("partial_output"):
            return redact(str(call["partial_output"]))
    return ""


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _seconds(start: Any, end: Any) -> int | None:
    try:
        return max(0, int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()))
    except (TypeError, ValueError):
        return None


def _skills(run: Run) -> dict[str, SkillVersion]:
    """The skills the pipeline gave the steps: the spec's own, plus the one a skill input chose."""
    versions = run.workflow_version.skills.select_related("skill").order_by("skill__name")
    skills = {sv.skill.name: sv for sv in versions}
    chosen = run_inputs.skill_input(run.workflow_version.spec["inputs"])
    if chosen:
        skill = skill_by_ref(run.inputs.get(chosen), Skill.objects.select_related("latest__skill"))
        if skill is not None and skill.latest is not None:
            skills[skill.name] = skill.latest
    return skills


def _prompt(run: Run, step: dict[str, Any], skills: dict[str, SkillVersion]) -> str:
    spec = run.workflow_version.spec
    outputs = prompts.StepOutputs(run.step_outputs or {})
    try:
        ctx = prompts.context(spec, run.inputs, outputs, skills, run.mode)
        messages = prompts.messages(step, ctx, skills)
    except (templating.TemplateError, KeyError, TypeError):
        return "(The prompt could not be rebuilt for display.)"
    text = "\n\n".join(f"--- {m['role']} ---\n{m['content']}" for m in messages)
    return redact(text[:MAX_OUTPUT_CHARS])
