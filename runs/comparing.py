"""Two runs side by side: their inputs, model, cost, checks and each step's output as a line diff."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import Run
from .money import run_cost

MAX_DIFF_CHARS = 40_000


@dataclass(frozen=True)
class Row:
    label: str
    left: str
    right: str

    @property
    def differs(self) -> bool:
        return self.left != self.right


@dataclass(frozen=True)
class StepDiff:
    title: str
    html: SafeString
    same: bool


def _input_text(value: Any) -> str:
    if value is None:
        return "—"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def facts(left: Run, right: Run) -> list[Row]:
    rows = [
        Row("Workflow", left.workflow_version.workflow.title, right.workflow_version.workflow.title),
        Row("Mode", str(left.get_mode_display()), str(right.get_mode_display())),
        Row("Status", left.status_label, right.status_label),
        Row("Model", left.model_used or "—", right.model_used or "—"),
        Row("Cost", run_cost(left), run_cost(right)),
        Row("Tokens", f"{left.tokens}", f"{right.tokens}"),
        Row("Steps done", f"{left.steps_done} of {left.steps_total}", f"{right.steps_done} of {right.steps_total}"),
        Row("Why it ended", left.reason or "—", right.reason or "—"),
    ]
    for name in dict.fromkeys([*(left.inputs or {}), *(right.inputs or {})]):
        rows.append(Row(f"Input: {name}", _input_text(left.inputs.get(name)), _input_text(right.inputs.get(name))))
    return rows


def step_diffs(left: Run, right: Run) -> list[StepDiff]:
    """Each step of either run, its output diffed line by line (escaped; added and removed lines marked)."""
    titles = {s["id"]: s["title"] for s in right.workflow_version.spec["steps"]}
    titles.update({s["id"]: s["title"] for s in left.workflow_version.spec["steps"]})
    diffs = []
    for step_id, title in titles.items():
        a = str((left.step_outputs or {}).get(step_id, ""))[:MAX_DIFF_CHARS].splitlines()
        b = str((right.step_outputs or {}).get(step_id, ""))[:MAX_DIFF_CHARS].splitlines()
        lines = []
        for line in difflib.unified_diff(a, b, "first run", "second run", lineterm="", n=2):
            kind = "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx"
            lines.append(f'<span class="diff-{kind}">{escape(line)}</span>')
        html = mark_safe("\n".join(lines))  # noqa: S308 (every line escaped above)
        diffs.append(StepDiff(title, html, a == b))
    return diffs
