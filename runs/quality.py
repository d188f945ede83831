"""The quality stage of a test or full run, after its steps and artifacts: the spec's checks (runs/checks.py),
the rubric's judge called through the same provider layer as the steps (priced, capped by the run's budget
and time limit, recorded in trace.json). A mixin of runs.pipeline.Executor, like runs/validation.py."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings

from catalog.models import SkillVersion
from providers import llm, pricing, resilience
from providers.resolution import ModelNotAvailable, Target, resolve

from . import cache, checks, costs, judge, money, prompts
from .control import RunControl
from .models import Mode, Run, Status
from .trace import Trace
from .validation import RunStopped

JUDGE_MAX_TOKENS = judge.MAX_TOKENS
FAILED_PREFIX = "Quality checks failed: "


def skill_files(skills: dict[str, SkillVersion]) -> set[str]:
    """What a references check counts: each skill's SKILL.md and its text files."""
    files = {"SKILL.md"} if skills else set()
    for version in skills.values():
        files.update(version.references)
    return files


class Quality:
    """What the quality stage reads and sets on the executor (runs.pipeline.Executor defines the rest)."""

    run: Run
    control: RunControl
    spec: dict[str, Any]
    trace: Trace
    targets: list[Target]
    prices: dict[str, llm.Price | None]
    skills: dict[str, SkillVersion]
    caps: dict[str, Any]
    outputs: prompts.StepOutputs
    say: Callable[[str], None]

    def _save(self, **fields: Any) -> None:
        raise NotImplementedError

    def _budget(self) -> Decimal:
        raise NotImplementedError

    def _check_cancel_and_time(self) -> None:
        raise NotImplementedError

    def _stopped(self, why: str, detail: str = "") -> RunStopped:
        raise NotImplementedError

    def check_quality(self) -> str | None:
        """Evaluate the checks; the reason the run fails when one did not pass, else None."""
        if self.run.mode == Mode.VALIDATE or not self.spec.get("checks"):
            return None
        self.say("Checking the output against the workflow's quality checks")
        self._save(current_step="Quality checks")
        results = checks.evaluate(
            self.spec, inputs=self.run.inputs, outputs=self.outputs, files=skill_files(self.skills), judge=self._judge
        )
        self.trace.checks = [{**r.as_dict(), **({"call": r.call} if r.call else {})} for r in results]
        # The judge's mean score over the rubrics it gave a verdict on (none: no score, rather than a zero)
        judged = [
            Decimal(str(r.score)) for r in results if r.kind == "rubric" and not r.reason.startswith(checks.NO_VERDICT)
        ]
        passed = all(r.passed for r in results)
        self._save(
            check_results=[r.as_dict() for r in results],
            checks_passed=passed,
            judge_score=(sum(judged, Decimal(0)) / len(judged)).quantize(Decimal("0.0001")) if judged else None,
        )
        return None if passed else FAILED_PREFIX + checks.summary(results) + "."

    # -- the judge ---------------------------------------------------------------------------------------
    def _judge_targets(self, check: dict[str, Any]) -> list[Target]:
        """The spec's judge, else the operator's (CHECKS_JUDGE_MODEL), else the model that ran the steps with the
        run's other models as its fallbacks: a run whose primary is down, answered by a fallback, is judged by
        that fallback rather than failed for a judge that could not be reached."""
        chosen = check.get("judge") or getattr(settings, "CHECKS_JUDGE_MODEL", "")
        if not chosen:
            ran = [t for t in self.targets if t.model == self.run.model_used][:1]
            return ran + [t for t in self.targets if t not in ran]
        if chosen == self.targets[0].model:
            return self.targets[:1]
        try:
            targets = resolve([chosen], explicit=True)[:1]
        except ModelNotAvailable as exc:
            raise checks.JudgeFailed(f"the judge model {chosen} is not connected") from exc
        for target in targets:
            self.trace.hide(target.api_key)
            self.prices.setdefault(target.model, pricing.price_of(target))
        return targets

    def _judge(self, check: dict[str, Any], text: str) -> checks.Verdict:
        targets = self._judge_targets(check)
        messages = judge.messages(check, text)
        call: dict[str, Any] = {"purpose": "judge", "attempts": []}
        # Like a step's call: a Replay reads the verdict stored for this very answer (free), a cache miss asks.
        key = cache.key(targets[0].model, messages, None, JUDGE_MAX_TOKENS)
        if self.run.replay:
            hit = cache.lookup(key, prefer_run=self.run.replay_of_id)
            call["cache_hit"] = hit is not None
            if hit is not None:
                self._count_judge(call, hit, targets[0])
                return self._verdict(hit, check, call)
        self._check_cancel_and_time()
        self._check_judge_budget(targets, messages)
        self.control.new_call(self.run.current_step)  # its streamed text is its own call's, not the last step's
        try:
            result, target = resilience.call(
                targets,
                messages,
                max_tokens=JUDGE_MAX_TOKENS,
                timeout=max(1.0, min(120.0, self.control.remaining())),
                prices=self.prices,
                control=self.control,
                on_attempt=call["attempts"].append,
            )
        except llm.Interrupted as cut:
            self._count_judge(call, cut.partial, targets[0])
            raise self._stopped(cut.why) from None
        except resilience.Stopped as stop:
            raise self._stopped(stop.why) from None
        except llm.ProviderError as exc:
            failed = checks.JudgeFailed(f"the judge could not be reached ({exc.message[:120]})")
            failed.call = call  # type: ignore[attr-defined]
            raise failed from None
        self._count_judge(call, result, target)
        if self.spec.get("cache") and target is targets[0]:
            cache.store(key, target.model, result, run=self.run.pk)
        return self._verdict(result, check, call)

    @staticmethod
    def _verdict(result: llm.LLMResult, check: dict[str, Any], call: dict[str, Any]) -> checks.Verdict:
        try:
            scores, reason = judge.parse(result.content, check)
        except checks.JudgeFailed as exc:
            exc.call = call  # type: ignore[attr-defined]
            raise
        return checks.Verdict(scores=scores, reason=reason, call=call)

    def _check_judge_budget(self, targets: list[Target], messages: list[dict[str, Any]]) -> None:
        # A fallback may answer the judge's call too: the worst case is the dearest priced target.
        worsts = [
            costs.worst_next_call(target, price, messages, None, JUDGE_MAX_TOKENS)
            for target in targets
            if (price := self.prices.get(target.model)) is not None
        ]
        if not worsts:
            return
        worst = max(worsts)
        budget = self._budget()
        if self.run.cost_usd + worst > budget:
            self.trace.event("cap", "budget would be passed by the judge", spent=self.run.cost_usd, budget=budget)
            raise RunStopped(
                Status.STOPPED,
                f"Stopped at the budget before the quality judge: {money.format_usd(self.run.cost_usd)} spent, and "
                f"the judge's call could cost up to {money.format_usd(worst)}, above the "
                f"{money.format_usd(budget)} budget.",
            )

    def _count_judge(self, call: dict[str, Any], result: llm.LLMResult, target: Target) -> None:
        """The judge's tokens and cost count as the run's; the model that ran the steps stays its model."""
        call.update(
            model=target.model,
            provider=target.provider,
            latency_ms=result.latency_ms,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            priced=result.cost_usd is not None,
        )
        self._save(
            prompt_tokens=self.run.prompt_tokens + result.prompt_tokens,
            completion_tokens=self.run.completion_tokens + result.completion_tokens,
            cost_usd=self.run.cost_usd + (result.cost_usd or 0),
            cost_unpriced=self.run.cost_unpriced or result.cost_usd is None,
        )
