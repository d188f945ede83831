"""What a running run and whoever watches it share: a stop signal with its cause, the deadline and the text
streamed so far. The watcher is the worker's host (one batched query per tick for all its runs) or, for a run
executed in the caller's own process (`runworkflow` without --queue, tests), the run's own thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from providers.llm import CallControl

from .live_text import save_texts
from .models import Run, Status

LIVE_LIMIT = 20_000  # characters of the current call kept for the page: the whole answer lands in step outputs


class Why:
    CANCEL = "cancel"  # the user asked
    SHUTDOWN = "shutdown"  # the worker is stopping: the run goes back to the queue
    LOST = "lost"  # someone else ended the run (recovery marked it failed): stop without a word


class RunControl(CallControl):
    def __init__(self, run_id: Any, *, inline: bool = False, echo: Callable[[str], None] | None = None) -> None:
        super().__init__(on_text=self._text)
        self.run_id = run_id
        self.why = ""
        self.echo = echo
        self._inline = inline
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._tokens = 0
        self._dirty = False
        self._next_poll = 0.0
        # Every piece of text not yet written to RunText, by call: a step's last words survive new_call().
        self._pending: list[tuple[int, str, str]] = []  # (call, step, text)
        self._call = 0
        self._step = ""
        self.text_seq: int | None = None  # the last RunText seq written; read from the database on first save
        self.call_base = 0  # calls made by earlier workers of this run
        self.save_lock = threading.Lock()
        self.draining = False

    def drain(self) -> None:
        """The worker is stopping: the call in flight may finish, then the run goes back to the queue."""
        self.draining = True

    def stop_for(self, why: str) -> None:
        if not self.why:
            self.why = why
        self.stop.set()

    # -- streamed text -----------------------------------------------------------------------------------
    def _text(self, piece: str) -> None:
        with self._lock:
            self._parts.append(piece)
            if self._pending and self._pending[-1][0] == self._call:
                call, step, text = self._pending[-1]
                self._pending[-1] = (call, step, text + piece)
            else:
                self._pending.append((self._call, self._step, piece))
            self._tokens += 1
            self._dirty = True
        if self.echo:
            self.echo(piece)

    def new_call(self, step: str = "") -> None:
        with self._lock:
            self._parts, self._tokens, self._dirty = [], 0, True
            self._call, self._step = self._call + 1, step

    def take_texts(self) -> list[tuple[int, str, str]]:
        """The text streamed since the last take, one (call, step, text) per call, oldest first."""
        with self._lock:
            pending, self._pending = self._pending, []
            return pending

    def take_live(self) -> tuple[str, int] | None:
        """The streamed text and its chunk count if it changed since the last take, else None."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            text = "".join(self._parts)
            return text[-LIVE_LIMIT:], self._tokens

    # -- watching, for a run executed in its caller's process --------------------------------------------
    def poll(self, force: bool = False) -> None:
        """Called by waiting code every ~0.1 s. Inline, it does the host's work for this one run at most every
        half second on the run's own thread and connection: the cancel flag, the streamed text, the heartbeat."""
        if not self._inline or (time.monotonic() < self._next_poll and not force):
            return
        self._next_poll = time.monotonic() + settings.RUN_LIVE_FLUSH_SECONDS
        row = Run.objects.filter(pk=self.run_id).values("cancel_requested", "status").first()
        if row is None or row["status"] != Status.RUNNING:
            self.stop_for(Why.LOST)
        elif row["cancel_requested"]:
            self.stop_for(Why.CANCEL)
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        save_texts([self])
        live = self.take_live()
        if live is not None:
            fields["live_output"], fields["live_tokens"] = live
        Run.objects.filter(pk=self.run_id, status=Status.RUNNING).update(**fields)
