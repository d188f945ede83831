"""Validation, the first stage of every run: inputs, caps, progression, skills, the model and its connection,
the estimate and the budgets. A mixin of runs.pipeline.Executor, kept apart so each module stays readable."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings

from catalog import inputs as run_inputs
from catalog.access import skill_by_ref
from catalog.models import SkillVersion
from providers import llm, pricing
from providers.checks import check_reachable
from providers.crypto import EncryptionNotConfigured, SecretUnreadable
from providers.models import ProviderConnection
from providers.resolution import ModelNotAvailable, Target, resolve_for_run
from providers.ssrf import UnsafeURL
from settings_app import audit
from settings_app.models import AuditAction

from . import costs, money, progression, run_tools, tools
from .control import RunControl
from .models import Mode, Run, Status
from .trace import Trace, now_iso


class RunStopped(Exception):
    """Ends a run cleanly with a status and a reason (limits, cancel, refusals)."""

    def __init__(self, status: Status, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Validation:
    """What validation reads and sets on the executor (runs.pipeline.Executor defines the rest)."""

    run: Run
    control: RunControl
    spec: dict[str, Any]
    trace: Trace
    targets: list[Target]
    prices: dict[str, llm.Price | None]
    limit_seconds: int
    skills: dict[str, SkillVersion]
    caps: dict[str, Any]

    say: Callable[[str], None]

    def _save(self, **fields: Any) -> None:
        raise NotImplementedError

    def _budget(self) -> Decimal:
        raise NotImplementedError

    def _record(self, call: dict[str, Any], result: llm.LLMResult, target: Target) -> None:
        raise NotImplementedError

    def _stopped(self, why: str, detail: str = "") -> RunStopped:
        raise NotImplementedError

    # -- validate --------------------------------------------------------------------------------------
    def validate(self) -> None:
        run, spec = self.run, self.spec
        self.say("Validating inputs, model, cost and budget")
        self._save(current_step="Validate")
        self.caps = spec["caps"][Mode.TEST if run.mode == Mode.VALIDATE else run.mode]
        self.limit_seconds = min(self.caps["timeout_seconds"], settings.RUN_MAX_SECONDS)
        self.control.deadline = time.monotonic() + self.limit_seconds
        checks: list[dict[str, Any]] = []
        self.trace.validation = {"at": now_iso(), "checks": checks, "caps": self.caps}
        from .services import refusal_before_start  # services imports this module

        refusal = refusal_before_start(run)  # an operator may have switched it off while it was queued
        if refusal:
            raise RunStopped(Status.FAILED, refusal)
        try:
            run_inputs.validate(spec["inputs"], run.inputs)
        except run_inputs.InputError as exc:
            raise RunStopped(Status.FAILED, f"The inputs are not valid: {exc}") from exc
        checks.append({"check": "inputs", "ok": True})
        max_steps = self.caps.get("max_steps", len(spec["steps"]))
        if len(spec["steps"]) > max_steps:
            raise RunStopped(
                Status.FAILED, f"The workflow has {len(spec['steps'])} steps; this mode allows {max_steps}."
            )
        if run.mode == Mode.FULL:
            self._check_progression(checks)
        self.skills = self._skills()
        refusal = run_tools.sandbox_refusal(spec, self.skills)  # a workflow that runs code needs the sandbox
        if refusal:
            raise RunStopped(Status.FAILED, refusal)
        try:
            self.targets = resolve_for_run(spec, run.requested_models)
        except (ModelNotAvailable, SecretUnreadable, EncryptionNotConfigured, UnsafeURL) as exc:
            raise RunStopped(Status.FAILED, str(exc)) from exc
        for target in self.targets:
            self.trace.hide(target.api_key)
            self.prices[target.model] = pricing.price_of(target)
        self.targets = self.targets[:1] + money.priced_fallbacks(self.targets[1:], self.prices)
        self._check_connection(checks)
        primary = self.targets[0]
        checks.append(
            {"check": "model", "ok": True, "model": primary.model, "fallbacks": [t.model for t in self.targets[1:]]}
        )
        estimate = self._estimate(primary)
        budget = self._budget()
        checks.append({"check": "cost", "ok": True, "estimated_cost_usd": estimate, "budget_usd": budget})
        self._save(
            model_used=primary.model,
            connection_id=primary.connection_id,
            estimated_cost_usd=estimate,
            steps_total=len(spec["steps"]),
        )
        self._audit_use()
        if estimate is not None and estimate > budget:
            raise RunStopped(
                Status.STOPPED,
                f"Refused: the estimated cost {money.format_usd(estimate)} is above the budget "
                f"{money.format_usd(budget)}.",
            )
        refusal = money.reserve(run, primary.connection_id, estimate)
        if refusal:
            raise RunStopped(Status.STOPPED, refusal)

    def _skills(self) -> dict[str, SkillVersion]:
        """The spec's own skills, plus the one a template workflow's skill input chose (its latest version)."""
        versions = self.run.workflow_version.skills.select_related("skill").order_by("skill__name")
        skills = {sv.skill.name: sv for sv in versions}
        chosen = run_inputs.skill_input(self.spec["inputs"])
        if chosen:
            skill = skill_by_ref(self.run.inputs.get(chosen))  # `library/name`, or a name one library has
            if skill is None or skill.latest is None:
                raise RunStopped(
                    Status.FAILED,
                    f"The skill '{self.run.inputs.get(chosen)}' is not in the catalog (or more than one library "
                    "has that name: choose it as library/name).",
                )
            skills[skill.name] = skill.latest
        self.trace.validation["skills"] = {name: sv.content_hash[:12] for name, sv in skills.items()}
        self.trace.validation["disclosure"] = tools.disclosure(skills)  # how much of each SKILL.md the prompt got
        return skills

    def _check_progression(self, checks: list[dict[str, Any]]) -> None:
        model = progression.intended_model(self.spec, self.run.requested_models)
        reason = progression.full_run_blocker(
            self.run.workflow_version, self.run.inputs_hash, user=self.run.user, model=model, exclude=self.run.pk
        )
        if reason and not progression.may_skip(self.run.user):
            raise RunStopped(Status.FAILED, reason)
        checks.append({"check": "progression", "ok": True, "skipped": bool(reason)})

    def _check_connection(self, checks: list[dict[str, Any]]) -> None:
        """At most one minimal call per connection (shared with every run validating on it meanwhile); a
        connection that refuses is dropped for its fallback. The check is the platform's call: its cost goes to
        the connection's platform spend (providers.checks), never to this run."""
        usable = []
        for target in self.targets:
            try:
                outcome = check_reachable(target, self.control)
            except llm.Interrupted as cut:
                raise self._stopped(cut.why) from None
            checks.append({"check": "connection", "model": target.model, "ok": outcome.usable, "found": outcome.found})
            if outcome.result is not None:
                self.trace.validation["connection_check"] = platform_call(target, outcome.result)
            if outcome.usable:
                usable.append(target)
                break
        if not usable:
            raise RunStopped(Status.FAILED, f"No model could be used: {checks[-1]['found']}")
        self.targets = usable + self.targets[self.targets.index(usable[0]) + 1 :]

    def _audit_use(self) -> None:
        ids = [t.connection_id for t in self.targets if t.connection_id]
        for used in ProviderConnection.objects.filter(pk__in=ids):
            audit.record(AuditAction.USED, used, actor=self.run.user, run=str(self.run.pk))

    def _estimate(self, target: Target) -> Decimal | None:
        # validate mode is priced as the test run it stands for
        mode = Mode.TEST if self.run.mode == Mode.VALIDATE else self.run.mode
        return costs.upper_estimate(
            target, self.prices.get(target.model), self.spec, mode, self.run.inputs, self.skills
        )


def platform_call(target: Target, result: llm.LLMResult) -> dict[str, Any]:
    """A connection check as the trace shows it: the platform's call, not counted in the run's cost or tokens."""
    return {
        "purpose": "connection check",
        "paid_by": "platform",
        "note": "Paid by the platform (the connection's platform spend), not charged to this run.",
        "model": target.model,
        "provider": target.provider,
        "latency_ms": result.latency_ms,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": result.cost_usd,
    }
