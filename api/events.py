"""Server-Sent Events for one run: status changes and the text the current call streams, read from the
Run row every API_EVENTS_POLL_SECONDS. Each stream holds a web thread (gunicorn runs a few per process), so
a stream ends with the run or after API_EVENTS_MAX_SECONDS (a client reconnects to go on), and a process
serves at most API_EVENTS_STREAMS_PER_PROCESS at once: the other threads stay free for pages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from django.conf import settings

from runs.models import FINISHED, Run

STATE_FIELDS = ("status", "reason", "steps_done", "steps_total", "current_step", "cost_usd", "live_tokens")
KEEPALIVE_SECONDS = 15.0
_slots_lock = threading.Lock()
_open_streams = 0


class EventStream:
    """The events of one run, holding one of the process's stream slots until it is closed. Django closes
    a streaming response's content when the response ends, even if it was never read: the slot comes back."""

    def __init__(self, run_id: Any) -> None:
        self._events = stream(run_id)
        self._open = True

    @classmethod
    def open(cls, run_id: Any) -> EventStream | None:
        """A stream, or None when this process already serves as many as it may."""
        global _open_streams
        with _slots_lock:
            if _open_streams >= settings.API_EVENTS_STREAMS_PER_PROCESS:
                return None
            _open_streams += 1
        return cls(run_id)

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._events
        finally:
            self._release()

    def close(self) -> None:
        self._events.close()
        self._release()

    def _release(self) -> None:
        global _open_streams
        with _slots_lock:
            if self._open:
                self._open = False
                _open_streams -= 1


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


def _state(row: dict[str, Any]) -> dict[str, Any]:
    state = {name: row[name] for name in STATE_FIELDS}
    state["tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    state["percent"] = int(100 * row["steps_done"] / row["steps_total"]) if row["steps_total"] else 0
    state["finished"] = row["status"] in FINISHED
    return state


def stream(run_id: Any) -> Generator[str, None, None]:
    """`status` when anything changes, `output` with the new text (`reset` when a new call starts),
    then `end` once the run has finished, or `timeout` when the stream's lifetime is up."""
    poll, lifetime = settings.API_EVENTS_POLL_SECONDS, settings.API_EVENTS_MAX_SECONDS
    fields = (*STATE_FIELDS, "prompt_tokens", "completion_tokens", "live_output")
    started = last_sent = time.monotonic()
    last_state: dict[str, Any] | None = None
    last_output = ""
    yield f"retry: {int(poll * 2000)}\n\n"
    while True:
        row = Run.objects.filter(pk=run_id).values(*fields).first()
        if row is None:
            yield event("end", {"status": "deleted", "finished": True})
            return
        state = _state(row)
        if state != last_state:
            last_state, last_sent = state, time.monotonic()
            yield event("status", state)
        output = row["live_output"]
        if output != last_output:
            appended = output.startswith(last_output)
            text = output[len(last_output) :] if appended else output
            last_output, last_sent = output, time.monotonic()
            yield event("output", {"text": text, "reset": not appended, "step": row["current_step"]})
        if state["finished"]:
            yield event("end", state)
            return
        if time.monotonic() - started > lifetime:
            yield event("timeout", {"message": "The stream's time is up; reconnect to follow the run further."})
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"
        time.sleep(poll)
