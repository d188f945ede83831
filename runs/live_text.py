"""The text a run's model calls stream, written in order as RunText rows (what event streams send and resume
from) — in one statement for all the runs a worker hosts, and once more when a run ends, so the last words of
every call are kept however they fell between flushes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Max

from .models import Run, RunText

if TYPE_CHECKING:
    from .control import RunControl


def save_texts(controls: Sequence[RunControl]) -> None:
    """Write what each run streamed since its last save. A run's seq goes on from its last row, so a run that
    went back to the queue and continues on another worker appends after what the first one wrote."""
    with ExitStack() as stack:
        for control in controls:  # the host's flush and a run's final save never number the same text twice
            stack.enter_context(control.save_lock)
        rows: list[RunText] = []
        latest: dict[str, int] = {}
        taken = [(control, texts) for control in controls if (texts := control.take_texts())]
        _number_new(control for control, _ in taken)
        for control, texts in taken:
            assert control.text_seq is not None
            for call, step, text in texts:
                control.text_seq += 1
                rows.append(
                    RunText(
                        run_id=control.run_id,
                        seq=control.text_seq,
                        call=control.call_base + call,
                        step=step[:120],
                        text=text,
                    )
                )
            latest[str(control.run_id)] = control.text_seq
        if not rows:
            return
        with transaction.atomic(savepoint=False):  # a stream that sees text_seq finds every row up to it
            RunText.objects.bulk_create(rows)
            Run.objects.bulk_update([Run(pk=pk, text_seq=seq) for pk, seq in latest.items()], ["text_seq"])


def _number_new(controls: Iterable[RunControl]) -> None:
    """Where the numbering of runs saved for the first time goes on from, in one query for all of them."""
    new = {str(control.run_id): control for control in controls if control.text_seq is None}
    if not new:
        return
    last = RunText.objects.filter(run_id__in=list(new)).values("run_id").annotate(seq=Max("seq"), call=Max("call"))
    found = {str(row["run_id"]): row for row in last}
    for run_id, control in new.items():
        row = found.get(run_id, {})
        control.text_seq, control.call_base = row.get("seq") or 0, row.get("call") or 0
