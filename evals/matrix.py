"""A batch's matrix: one row per input set, one column per model, and per model the pass rate, the mean
judge score, the cost and the latency (as promptfoo's matrix view shows them). Two queries, however large."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from runs.models import Run

from .models import EvalBatch, EvalRun


@dataclass
class ModelSummary:
    model: str
    runs: int = 0
    finished: int = 0
    passed: int = 0
    scores: list[Decimal] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    unpriced: bool = False
    seconds: list[float] = field(default_factory=list)

    @property
    def pass_rate(self) -> int | None:
        return round(100 * self.passed / self.finished) if self.finished else None

    @property
    def mean_score(self) -> Decimal | None:
        return (sum(self.scores, Decimal(0)) / len(self.scores)).quantize(Decimal("0.01")) if self.scores else None

    @property
    def mean_seconds(self) -> float | None:
        return round(sum(self.seconds) / len(self.seconds), 1) if self.seconds else None


@dataclass
class Cell:
    model: str
    run: Run | None


@dataclass
class Row:
    label: str
    cells: list[Cell]


@dataclass
class Matrix:
    models: list[ModelSummary]
    rows: list[Row]
    finished: bool


def passed(run: Run) -> bool:
    """A test run passes when it succeeded: its steps ran and its quality checks passed."""
    return run.status == "succeeded"


def build(batch: EvalBatch) -> Matrix:
    entries = list(EvalRun.objects.filter(batch=batch).select_related("run", "case").order_by("case__position", "pk"))
    summaries = {name: ModelSummary(name) for name in batch.model_names}
    cells: dict[tuple[int, str], Run] = {}
    labels: dict[int, str] = {}
    for entry in entries:
        run, summary = entry.run, summaries.setdefault(entry.model, ModelSummary(entry.model))
        cells[(entry.case.position, entry.model)] = run
        labels[entry.case.position] = entry.case.label
        summary.runs += 1
        if not run.is_finished:
            continue
        summary.finished += 1
        summary.passed += passed(run)
        summary.cost += run.cost_usd
        summary.unpriced = summary.unpriced or run.cost_unpriced
        if run.judge_score is not None:
            summary.scores.append(run.judge_score)
        if run.started_at and run.finished_at:
            summary.seconds.append((run.finished_at - run.started_at).total_seconds())
    rows = [Row(labels[p], [Cell(m, cells.get((p, m))) for m in summaries]) for p in sorted(labels)]
    finished = all(s.finished == s.runs for s in summaries.values())
    return Matrix(models=list(summaries.values()), rows=rows, finished=finished)
