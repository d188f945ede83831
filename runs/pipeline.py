"""Executing one run: validate (runs/validation.py), then the steps with their tool loop, then the artifacts.

Lifecycle (docs/runs.md): a run is claimed (queued → running) by exactly one worker, then every outcome
ends in a finished status with a one-sentence reason and a trace.json, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.utils import timezone

from catalog import templating
from catalog.models import SkillVersion
from providers import llm, resilience
from providers.resolution import Target

from . import cache, costs, dbpool, files, money, prompts, run_tools, usage
from .artifacts import TRACE
from .control import RunControl, Why
from .dispatch import claim_one
from .live_text import save_texts
from .models import Artifact, Mode, Run, Status
from .quality import Quality
from .trace import Trace, now_iso, run_summary, step_totals
from .validation import RunStopped, Validation
from .workspace import Workspace

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


claim = claim_one
__all__ = ["ArtifactUnwritable", "Executor", "RunStopped", "claim", "execute", "execute_claimed"]


class ArtifactUnwritable(Exception):
    """The disk refused an artifact (full, permissions): the run fails with that reason."""


DB_LOST = "The database connection was lost; the run went back to the queue to continue from its first unfinished step."


class Executor(Validation, Quality):
    def __init__(self, run: Run, control: RunControl, on_progress: Progress | None = None) -> None:
        self.run = run
        self.control = control
        self.spec: dict[str, Any] = run.workflow_version.spec
        self.trace = Trace()
        self.say = on_progress or (lambda message: None)
        self.targets: list[Target] = []
        self.prices: dict[str, llm.Price | None] = {}
        self.tool_calls_used = 0
        self.limit_seconds = 0
        self.skills: dict[str, SkillVersion] = {}
        self.outputs = prompts.StepOutputs(run.step_outputs or {})
        self.caps: dict[str, Any] = {}
        self.unwritten: list[str] = []  # artifacts the disk refused, named in the run's reason
        self.unwritten_why = ""
        self.workspace: Workspace | None = None  # the code sandbox's folders, made on the first file or code tool

    # -- helpers ---------------------------------------------------------------------------------------
    def _save(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.run, name, value)
        self.run.heartbeat_at = timezone.now()
        # Absolute values, so a write repeated after a dropped connection is the same write.
        dbpool.retrying(lambda: self.run.save(update_fields=[*fields, "heartbeat_at"]), what=f"run {self.run.pk}")

    def _check_cancel_and_time(self) -> None:
        if self.control.draining:  # the worker is stopping: no new call, back to the queue
            self.control.stop_for(Why.SHUTDOWN)
        self.control.poll(force=True)
        if self.control.stop.is_set():
            raise self._stopped(self.control.why)
        if self.control.remaining() <= 0:
            raise self._stopped("deadline")

    def _stopped(self, why: str, detail: str = "") -> RunStopped:
        """The stop that ends the run for a cancel, a shutdown, a lost run or the deadline. A call or a pause
        cut short says only "cancelled" or "deadline": the control knows which stop it was."""
        if why != "deadline":
            why = self.control.why or Why.CANCEL
        if why == Why.CANCEL:
            return RunStopped(Status.CANCELLED, "Cancelled on request.")
        if why == Why.SHUTDOWN:
            return RunStopped(Status.QUEUED, "The worker stopped; the run went back to the queue.")
        if why == Why.LOST:
            return RunStopped(Status.FAILED, "Another worker ended this run.")
        self.trace.event("cap", "wall-clock limit reached", limit_seconds=self.limit_seconds)
        return RunStopped(
            Status.STOPPED, f"Stopped: the run reached its {self.limit_seconds}-second time limit.{detail}"
        )

    def _budget(self) -> Decimal:
        return money.run_budget(self.run, self.caps)

    def _context(self) -> dict[str, Any]:
        return prompts.context(self.spec, self.run.inputs, self.outputs, self.skills, self.run.mode)

    def _messages(self, step: dict[str, Any]) -> list[dict[str, Any]]:
        return prompts.messages(step, self._context(), self.skills)

    def _tool_defs(self, step: dict[str, Any]) -> list[dict[str, Any]] | None:
        return run_tools.definitions(step["tools"], self.skills) if step.get("tools") else None

    def _workspace(self) -> Workspace:
        if self.workspace is None:
            self.workspace = Workspace(self.run, self.skills, self._sandbox_stop)
        return self.workspace

    def _sandbox_stop(self) -> str:
        """Asked by the sandbox while code runs: a cancel or the run's deadline kills it."""
        self.control.poll()
        if self.control.stop.is_set():
            return "deadline" if self.control.why == "deadline" else "cancel"
        return "deadline" if self.control.remaining() <= 0 else ""

    def _keep_outputs(self) -> None:
        """What the run's code wrote to /outputs becomes artifacts (within limits); the workspace goes."""
        if self.workspace is None:
            return
        try:
            taken = {a["name"] for a in self.spec["artifacts"]}
            try:
                kept, skipped = files.collect_outputs(self.run, self.workspace.outputs, taken)
            except OSError as exc:
                raise ArtifactUnwritable(
                    f"The files the code wrote could not be kept ({exc.strerror or exc})."
                ) from exc
            if kept or skipped:
                self.trace.event("outputs", "files the code wrote, kept as artifacts", kept=kept, skipped=skipped)
        finally:
            self.workspace.close()

    # -- steps -----------------------------------------------------------------------------------------
    def run_steps(self) -> None:
        steps = self.spec["steps"]
        for index, step in enumerate(steps, 1):
            if step["id"] in (self.run.step_outputs or {}):
                self.trace.event("resume", f"step {step['id']} reused from the run this one resumes")
                continue
            self._check_cancel_and_time()
            self.say(f"Step {index}/{len(steps)}: {step['title']}")
            self._save(current_step=step["title"], step_started_at=timezone.now())
            self.step_id = step["id"]
            entry = self.trace.start_step(step["id"], step["title"])
            try:
                output = self._run_step(step, entry)
            except BaseException:
                entry.update(status="interrupted", **step_totals(entry))
                raise
            entry.update(status="done", finished_at=now_iso(), output_chars=len(output), **step_totals(entry))
            self.outputs[step["id"]] = output
            self._save(step_outputs=dict(self.outputs), steps_done=self.run.steps_done + 1)

    def _run_step(self, step: dict[str, Any], entry: dict[str, Any]) -> str:
        messages = self._messages(step)
        allowed = self._tool_defs(step)
        max_tools = self.caps["max_tool_calls"]
        for _round in range(max_tools + 3):
            offer = allowed if allowed and self.tool_calls_used < max_tools else None
            self._check_cancel_and_time()
            self._check_budget(messages, offer)
            call: dict[str, Any] = {"attempts": []}
            entry["calls"].append(call)
            result, target = self._call(messages, offer, call)
            self._record(call, result, target)
            if not result.tool_calls:
                return result.content
            messages.append(result.message)
            call["tool_calls"] = []
            for tool_call in result.tool_calls:
                messages.append(
                    {"role": "tool", "tool_call_id": tool_call.id, "content": self._tool(tool_call, call, offer)}
                )
        self.trace.event("cap", "tool loop ended without a final answer", step=step["id"])
        raise RunStopped(Status.STOPPED, f"Stopped: step '{step['title']}' kept calling tools past its limit.")

    def _call(
        self, messages: list[dict[str, Any]], offer: list[dict[str, Any]] | None, call: dict[str, Any]
    ) -> tuple[llm.LLMResult, Target]:
        max_tokens = self.caps["max_output_tokens"]
        key = cache.key(self.targets[0].model, messages, offer, max_tokens)
        if self.run.replay:  # only a Replay reads the cache; the spec's `cache` decides what is stored
            hit = cache.lookup(key, prefer_run=self.run.replay_of_id)
            call["cache_hit"] = hit is not None
            if hit is not None:
                return hit, self.targets[0]
        self.control.new_call(self.run.current_step)
        try:
            result, target = resilience.call(
                self.targets,
                messages,
                tools=offer,
                max_tokens=max_tokens,
                timeout=max(1.0, min(120.0, self.control.remaining())),
                prices=self.prices,
                control=self.control,
                on_attempt=lambda attempt: self._attempt_on_timeline(call, attempt),
                on_cut_short=self._count_cut_short(call),
                on_wait=self._wait_on_timeline,
            )
        except llm.Interrupted as cut:
            # A call cut short still consumed tokens: count what was streamed (estimated, and flagged so).
            self._record(call, cut.partial, self.targets[0])
            raise self._stopped(cut.why) from None
        except resilience.Stopped as stop:
            detail = f" The last attempt failed: {stop.last.message}" if stop.last else ""
            raise self._stopped(stop.why, detail) from None
        if self.spec.get("cache") and target is self.targets[0]:
            cache.store(key, target.model, result, run=self.run.pk)
        return result, target

    # -- what the run page's timeline shows as it happens ------------------------------------------------
    TIMELINE_EVENTS_KEPT = 40

    def show_on_timeline(self, text: str) -> None:
        """Record one event for the run page's timeline now (a retry, a fallback, a breaker skip, a wait), under
        the current step: the trace keeps the same facts, but only at the end of the run."""
        events = [*self.run.timeline_events, {"at": now_iso(), "step": getattr(self, "step_id", ""), "text": text}]
        with dbpool.briefly():  # the call goes on: it holds no database connection
            self._save(timeline_events=events[-self.TIMELINE_EVENTS_KEPT :])

    def _attempt_on_timeline(self, call: dict[str, Any], attempt: dict[str, Any]) -> None:
        call["attempts"].append(attempt)
        status, model = attempt["status"], attempt["model"]
        if status == "breaker_open":
            self.show_on_timeline(f"{model} skipped: its provider failed repeatedly just now (breaker open).")
        elif status != "ok":
            self.show_on_timeline(f"Attempt {attempt['attempt']} on {model} failed ({status}).")
        elif model != self.targets[0].model:
            self.show_on_timeline(f"Answered by the fallback {model}.")
        elif len(call["attempts"]) > 1:
            self.show_on_timeline(f"Attempt {attempt['attempt']} on {model} succeeded.")

    def _wait_on_timeline(self, seconds: float) -> None:
        self.trace.event("rate_limit", "waiting for the connection's rate limit", seconds=round(seconds, 2))
        self.show_on_timeline(f"Waiting {seconds:.1f} s for the connection's rate limit.")

    def _count_cut_short(self, call: dict[str, Any]) -> Callable[[llm.LLMResult, Target], None]:
        """An attempt whose stream the provider or the network cut is counted too, before the retry."""

        def count(result: llm.LLMResult, target: Target) -> None:
            attempt: dict[str, Any] = {}
            call.setdefault("cut_short_attempts", []).append(attempt)
            self._record(attempt, result, target)

        return count

    def _tool(self, tool_call: llm.ToolCall, call: dict[str, Any], offered: list[dict[str, Any]] | None) -> str:
        record: dict[str, Any] = {"id": tool_call.id, "name": tool_call.name, "arguments": tool_call.arguments[:2000]}
        call["tool_calls"].append(record)
        offered_names = {d["function"]["name"] for d in offered or []}
        if tool_call.name not in offered_names or self.tool_calls_used >= self.caps["max_tool_calls"]:
            record["error"] = "not allowed"
            self.trace.event("cap", "tool call refused (not offered or limit reached)", tool=tool_call.name)
            return "Tool calls are not available now: answer with what you have."
        self.tool_calls_used += 1
        try:
            text, summary = run_tools.run(
                tool_call.name, tool_call.arguments, self.skills, self._workspace(), self.control.remaining()
            )
        except run_tools.ToolError as exc:
            record["error"] = str(exc)
            return f"Error: {exc}"
        record["result"] = summary
        return text

    def _check_budget(self, messages: list[dict[str, Any]], offer: list[dict[str, Any]] | None) -> None:
        budget = self._budget()
        # A fallback may answer this call: the worst case is the dearest priced target.
        worsts = [
            costs.worst_next_call(target, price, messages, offer, self.caps["max_output_tokens"])
            for target in self.targets
            if (price := self.prices.get(target.model)) is not None
        ]
        if not worsts:
            return
        worst = max(worsts)
        if self.run.cost_usd + worst > budget:
            self.trace.event(
                "cap", "budget would be passed", spent=self.run.cost_usd, next_call_worst=worst, budget=budget
            )
            raise RunStopped(
                Status.STOPPED,
                f"Stopped at the budget: {money.format_usd(self.run.cost_usd)} spent, and the next call could cost "
                f"up to {money.format_usd(worst)}, above the {money.format_usd(budget)} budget.",
            )

    def _record(self, call: dict[str, Any], result: llm.LLMResult, target: Target) -> None:
        call.update(
            model=target.model,
            provider=target.provider,
            latency_ms=result.latency_ms,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            priced=result.cost_usd is not None,
        )
        if result.estimated:
            call.update(estimated=True, cut_short=True, partial_output=result.content[:2000])
        self._save(
            prompt_tokens=self.run.prompt_tokens + result.prompt_tokens,
            completion_tokens=self.run.completion_tokens + result.completion_tokens,
            cost_usd=self.run.cost_usd + (result.cost_usd or 0),
            cost_unpriced=self.run.cost_unpriced or result.cost_usd is None,
            model_used=target.model,
            connection_id=target.connection_id,
        )

    # -- artifacts and the end -------------------------------------------------------------------------
    def _write_artifact(self, name: str, text: str) -> None:
        try:
            dbpool.retrying(lambda: Artifact.write(self.run, name, text), what=f"artifact {name} of run {self.run.pk}")
        except OSError as exc:
            self.unwritten.append(name)
            self.unwritten_why = exc.strerror or str(exc)
            raise ArtifactUnwritable(self._unwritten_reason()) from exc

    def _unwritten_reason(self) -> str:
        """Names every file the disk refused, not just the first or the last."""
        kept = (
            " The trace is kept in the database: the run page and the API show it." if TRACE in self.unwritten else ""
        )
        return f"The disk refused these files ({self.unwritten_why}): {', '.join(self.unwritten)}.{kept}"

    def write_artifacts(self) -> None:
        ctx = self._context()
        refused = None
        for spec_artifact in self.spec["artifacts"]:
            try:
                self._write_artifact(spec_artifact["name"], templating.render(spec_artifact["template"], ctx))
            except ArtifactUnwritable as exc:
                refused = exc  # the others are still tried, so the reason names them all
        if refused is not None:
            raise refused

    def execute(self) -> None:
        run = self.run
        status, reason = Status.FAILED, "The run ended unexpectedly."
        try:
            self.validate()
            if run.mode == Mode.VALIDATE:
                cost = money.format_usd(run.estimated_cost_usd, offline=self.targets[0].is_offline)
                status, reason = Status.SUCCEEDED, f"Validation passed with {run.model_used}; estimated cost {cost}."
            else:
                self.run_steps()
                # A cancel that came during the last call ends the run cancelled, its output kept.
                self._check_cancel_and_time()
                self.write_artifacts()
                failed = self.check_quality()  # the outputs are kept either way
                status, reason = (
                    (Status.FAILED, failed)
                    if failed
                    else (Status.SUCCEEDED, f"Finished {len(self.spec['steps'])} steps with {run.model_used}.")
                )
        except RunStopped as stop:
            status, reason = stop.status, stop.reason
        except llm.ProviderError as exc:
            status, reason = Status.FAILED, exc.message
        except templating.TemplateError as exc:
            status, reason = Status.FAILED, f"The workflow spec has a template problem: {exc}"
        except ArtifactUnwritable as exc:
            status, reason = Status.FAILED, str(exc)
        except dbpool.DROPPED:
            # A query met a connection the server dropped: what is written stays, the rest is redone from the
            # first unfinished step (finished steps are never paid again). The writes below retry.
            log.warning("run %s lost its database connection; back to the queue", run.pk, exc_info=True)
            status, reason = Status.QUEUED, DB_LOST
        except Exception:
            log.exception("run %s failed with an internal error", run.pk)
            status, reason = Status.FAILED, "An internal error stopped the run; the operators can see it in the logs."
        finally:
            self._finish(status, reason)

    def _finish(self, status: Status, reason: str) -> None:
        self._settle()
        if self.control.why == Why.LOST:
            self.say("stopped: another worker ended this run")
            return  # recovery already wrote its final status and trace note; a lost run never turns "succeeded"
        self.trace.event("end", reason, status=status)
        try:
            self._keep_outputs()
        except ArtifactUnwritable:
            self.unwritten.append("the files the code wrote")
        if self.trace.validation:
            with contextlib.suppress(ArtifactUnwritable):
                self._write_artifact("validation.json", json.dumps(self.trace.validation, indent=2, default=str))
        if status not in (Status.SUCCEEDED, Status.QUEUED) and any(self.outputs.values()):
            try:  # keep what was made so far
                self.write_artifacts()
            except ArtifactUnwritable:
                pass  # named in the reason below
            except Exception:
                log.exception("partial artifacts of run %s could not be written", self.run.pk)
        if self.unwritten:
            status, reason = Status.FAILED, self._unwritten_reason()
        finished = timezone.now() if status != Status.QUEUED else None
        self.run.status, self.run.reason, self.run.finished_at = status, reason, finished
        with contextlib.suppress(ArtifactUnwritable):
            self._write_artifact(TRACE, self.trace.render(run_summary(self.run, self.tool_calls_used)))
        if TRACE in self.unwritten:  # kept in the database instead, with the reason that names it
            status, reason, finished = Status.FAILED, self._unwritten_reason(), finished or timezone.now()
            self.run.status, self.run.reason, self.run.finished_at = status, reason, finished
            self.run.trace_text = self.trace.render(run_summary(self.run, self.tool_calls_used))
        self._end(status, reason, finished)

    def _settle(self) -> None:
        """First in `_finish`: no more calls, so what the run spent is final. A failure here is logged and
        never stops the final status from being written (recovery settles again if need be)."""
        try:
            dbpool.retrying(lambda: money.settle(self.run), what=f"settling run {self.run.pk}")
        except Exception:
            log.exception("run %s: its reservation could not be released", self.run.pk)

    def _end(self, status: Status, reason: str, finished: Any) -> None:
        """The final write, only if the run is still running: a run that recovery ended stays as it was."""
        save_texts([self.control])  # the words streamed since the last flush, before the run is seen as ended
        fields: dict[str, Any] = {"status": status, "reason": reason, "finished_at": finished, "current_step": ""}
        if status == Status.QUEUED:  # back to the queue: the next worker continues from the first unfinished step
            fields.update(worker="", started_at=None, heartbeat_at=None, reason="")
            self.trace.event("requeued", reason)
        ended = dbpool.retrying(
            lambda: Run.objects.filter(pk=self.run.pk, status=Status.RUNNING).update(
                **fields,
                live_output="",
                trace_text=self.run.trace_text,
                prompt_tokens=self.run.prompt_tokens,
                completion_tokens=self.run.completion_tokens,
                cost_usd=self.run.cost_usd,
                cost_unpriced=self.run.cost_unpriced,
                step_outputs=dict(self.outputs),
                steps_done=self.run.steps_done,
            ),
            what=f"ending run {self.run.pk}",
        )
        if not ended:
            log.warning("run %s was ended elsewhere; its final status is kept", self.run.pk)
        dbpool.retrying(self.run.refresh_from_db, what=f"run {self.run.pk}")
        if self.run.is_finished:
            usage.record_finished(self.run)  # once per run, however many times it is reported
        self.say(f"{self.run.status}: {self.run.reason or reason}")


def execute(run_id: Any, on_progress: Progress | None = None, on_text: Progress | None = None) -> Run | None:
    """Claim and execute a run in this thread (`runworkflow`, tests). Returns None when another worker has it
    (or it is gone or finished). The run's own thread watches for a cancel while it waits."""
    if not claim_one(run_id):
        return None
    return execute_claimed(run_id, RunControl(run_id, inline=True, echo=on_text), on_progress)


def execute_claimed(run_id: Any, control: RunControl, on_progress: Progress | None = None) -> Run:
    run = Run.objects.select_related("workflow_version__workflow", "user").get(pk=run_id)
    Executor(run, control, on_progress).execute()
    return run
