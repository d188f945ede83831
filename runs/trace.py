"""trace.json: the whole story of a run, written at the end of every run whatever its outcome.

Format `awp-trace/1` (docs/runs.md): run summary, validation, one entry per step with every LLM call
(model, provider, attempt, status, latency, tokens, cost, tool calls) and the events (caps hit, errors).
Every string passes through providers.redaction.redact with the run's own secrets before it is written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from providers.redaction import redact

FORMAT = "awp-trace/1"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Trace:
    def __init__(self) -> None:
        self.validation: dict[str, Any] = {}
        self.steps: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] | None = None  # the quality checks' results, once evaluated
        self._secrets: list[str] = []

    def hide(self, secret: str | None) -> None:
        if secret:
            self._secrets.append(secret)

    def event(self, kind: str, message: str, **data: Any) -> None:
        self.events.append({"at": now_iso(), "kind": kind, "message": message, **data})

    def start_step(self, step_id: str, title: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": step_id,
            "title": title,
            "started_at": now_iso(),
            "status": "running",
            "calls": [],
        }
        self.steps.append(entry)
        return entry

    def render(self, run_summary: dict[str, Any]) -> str:
        document = {
            "format": FORMAT,
            "run": run_summary,
            "validation": self.validation,
            "steps": self.steps,
            "events": self.events,
        }
        if self.checks is not None:
            document["checks"] = self.checks
        text = json.dumps(document, indent=2, default=_default, ensure_ascii=False)
        return redact(text, *self._secrets)


def step_totals(entry: dict[str, Any]) -> dict[str, Any]:
    """A step's tokens and cost, summed over its calls (None when a call was unpriced)."""
    calls = entry["calls"]
    costs = [c.get("cost_usd") for c in calls if "model" in c]
    return {
        "prompt_tokens": sum(c.get("prompt_tokens", 0) for c in calls),
        "completion_tokens": sum(c.get("completion_tokens", 0) for c in calls),
        "cost_usd": None if any(c is None for c in costs) else sum(costs, Decimal(0)),
    }


def run_summary(run: Any, tool_calls: int) -> dict[str, Any]:
    """The `run` part of trace.json."""
    return {
        "id": str(run.pk),
        "workflow": run.workflow_version.workflow.slug,
        "version": run.workflow_version.number,
        "spec_version": run.workflow_version.version,
        "mode": run.mode,
        "status": run.status,
        "reason": run.reason,
        "model": run.model_used,
        "inputs": run.inputs,
        "inputs_hash": run.inputs_hash,
        "resumed_from": str(run.resumed_from_id) if run.resumed_from_id else None,
        "replay": run.replay,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "estimated_cost_usd": run.estimated_cost_usd,
        "cost_usd": None if run.cost_unpriced and not run.cost_usd else run.cost_usd,
        "cost_unpriced": run.cost_unpriced,
        "tokens": {"prompt": run.prompt_tokens, "completion": run.completion_tokens},
        "tool_calls": tool_calls,
    }


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
