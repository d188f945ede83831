"""What My runs offers beyond the list: a CSV export of the filtered runs and two runs compared."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from .access import get_run_for_user, visible_runs
from .comparing import facts, step_diffs
from .forms import HistoryFilter
from .money import run_cost

CSV_COLUMNS = (
    "id", "created_at", "workflow", "mode", "status", "model", "duration_seconds", "cost", "cost_usd",
    "prompt_tokens", "completion_tokens", "user", "key_input", "inputs",
)  # fmt: skip
EXPORT_FIELDS = (
    "id", "created_at", "mode", "status", "reason", "steps_done", "model_used", "started_at", "finished_at",
    "cost_usd", "cost_unpriced", "prompt_tokens", "completion_tokens", "inputs", "user__username",
    "workflow_version__workflow__title", "workflow_version__source_text",
)  # fmt: skip
MAX_EXPORT = 50_000


class _Echo:
    def write(self, value: str) -> str:
        return value


def _safe(value: Any) -> str:
    # A cell a spreadsheet would read as a formula (=, +, -, @) is written as text.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The runs the history's filters select (every page, newest first), streamed in chunks."""
    form = HistoryFilter(request.GET or None)
    runs = form.apply(visible_runs(request.user)).only(*EXPORT_FIELDS).order_by("-created_at", "-id")
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for run in runs[:MAX_EXPORT].iterator(chunk_size=1000):
            yield writer.writerow(
                [
                    _safe(v)
                    for v in (
                        run.pk, run.created_at.isoformat(), run.workflow_version.workflow.title, run.mode,
                        run.status_label, run.model_used, run.duration_seconds if run.duration_seconds is not None
                        else "", run_cost(run), run.cost_usd, run.prompt_tokens, run.completion_tokens,
                        run.user.get_username(), run.key_input, json.dumps(run.inputs, ensure_ascii=False),
                    )
                ]
            )  # fmt: skip

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="runs.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def compare(request: HttpRequest) -> HttpResponse:
    """?run=A&run=B: two runs the user may see, side by side. Fewer or more than two: say so."""
    chosen = request.GET.getlist("run")
    if len(chosen) != 2:
        context: dict[str, object] = {"problem": "Choose exactly two runs to compare: tick them in My runs."}
        return render(request, "runs/compare.html", context, status=400)
    left, right = (get_run_for_user(request.user, run_id) for run_id in chosen)
    context = {"left": left, "right": right, "rows": facts(left, right), "steps": step_diffs(left, right)}
    return render(request, "runs/compare.html", context)
