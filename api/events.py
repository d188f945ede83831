"""Server-Sent Events for one run: `status` when the run row changes, `output` for each piece of text the model
streamed (RunText rows, in order), then `end`. Every event has an `id:` — the seq of the last text sent — so a
client that reconnects with `Last-Event-ID` goes on exactly where it left: no text twice, none missing.

Under ASGI (the web server, docs/operations.md) a stream is a coroutine fed by the process's shared hub
(api/event_hub.py): thousands of idle streams cost no thread and no query of their own. Under WSGI (the test
server, `runserver`) each stream polls in its own thread, as a fallback. Slots are counted per process, in
total and per user, so one user cannot take every slot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from runs.models import FINISHED, Run, RunText
from runs.money import usd_text

STATE_FIELDS = ("status", "reason", "steps_done", "steps_total", "current_step", "cost_usd", "live_tokens")
ROW_FIELDS = (*STATE_FIELDS, "prompt_tokens", "completion_tokens", "text_seq")
TEXT_FIELDS = ("seq", "call", "step", "text")
KEEPALIVE_SECONDS = 5.0  # a write to a client that has gone fails; under ASGI a closed socket is seen at once

_slots_lock = threading.Lock()
_open_streams = 0
_open_by_user: dict[int, int] = {}


class Busy(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def take_slot(user_id: int) -> None:
    """Count a new stream, or raise Busy when this process or this user already has as many as allowed."""
    global _open_streams
    with _slots_lock:
        if _open_streams >= settings.API_EVENTS_STREAMS_PER_PROCESS:
            raise Busy("This server follows as many runs as it can: retry soon, or poll the run.")
        if _open_by_user.get(user_id, 0) >= settings.API_EVENTS_STREAMS_PER_USER:
            raise Busy("You already follow as many runs at once as allowed: close a stream, or poll the run.")
        _open_streams += 1
        _open_by_user[user_id] = _open_by_user.get(user_id, 0) + 1


def give_slot(user_id: int) -> None:
    global _open_streams
    with _slots_lock:
        _open_streams -= 1
        left = _open_by_user.get(user_id, 0) - 1
        if left > 0:
            _open_by_user[user_id] = left
        else:
            _open_by_user.pop(user_id, None)


def event(name: str, data: dict[str, Any], event_id: int) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, default=str)}\n\n"


def state_of(row: dict[str, Any]) -> dict[str, Any]:
    state = {name: row[name] for name in STATE_FIELDS}
    state["cost_usd"] = usd_text(row["cost_usd"])
    state["tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    state["percent"] = int(100 * row["steps_done"] / row["steps_total"]) if row["steps_total"] else 0
    state["finished"] = row["status"] in FINISHED
    return state


def read_row(run_id: Any) -> dict[str, Any] | None:
    return Run.objects.filter(pk=run_id).values(*ROW_FIELDS).first()


def read_texts(run_id: Any, after: int) -> list[dict[str, Any]]:
    """The text rows after `after`, and the row `after` itself (so the next call is known to be new or not)."""
    return list(RunText.objects.filter(run_id=run_id, seq__gte=after).order_by("seq").values(*TEXT_FIELDS))


@dataclass
class Follower:
    """What one client has been sent, and the events that bring it up to date with the run."""

    sent: int  # the seq of the last text sent (the Last-Event-ID)
    call: int | None = None  # the call that text belonged to
    state: dict[str, Any] | None = None
    done: bool = False
    started: float = field(default_factory=time.monotonic)

    def needs_texts(self, row: dict[str, Any] | None) -> bool:
        return row is not None and row["text_seq"] > self.sent

    def take(self, texts: list[dict[str, Any]]) -> list[str]:
        """Output events for the rows that follow on directly from what was sent; others are ignored."""
        out = []
        for text in texts:
            if text["seq"] == self.sent and self.call is None:
                self.call = text["call"]  # the row the client already has: only its call matters
            elif text["seq"] == self.sent + 1:
                reset = text["call"] != self.call
                self.sent, self.call = text["seq"], text["call"]
                data = {"text": text["text"], "call": text["call"], "step": text["step"], "reset": reset}
                out.append(event("output", data, self.sent))
        return out

    def catch_up(self, row: dict[str, Any] | None) -> list[str]:
        """`status` if it changed, and `end` once the run has finished and every text has been sent."""
        if row is None:
            self.done = True
            return [event("end", {"status": "deleted", "finished": True}, self.sent)]
        out = []
        state = state_of(row)
        if state != self.state:
            self.state = state
            out.append(event("status", state, self.sent))
        if state["finished"] and self.sent >= row["text_seq"]:
            self.done = True
            out.append(event("end", state, self.sent))
        elif time.monotonic() - self.started > settings.API_EVENTS_MAX_SECONDS:
            self.done = True
            message = "The stream's time is up; reconnect (with Last-Event-ID) to follow the run further."
            out.append(event("timeout", {"message": message}, self.sent))
        return out


def retry_line() -> str:
    return f"retry: {int(settings.API_EVENTS_POLL_SECONDS * 2000)}\n\n"


def poll_stream(run_id: Any, after: int) -> Generator[str, None, None]:
    """The WSGI fallback: this thread reads the run every API_EVENTS_POLL_SECONDS."""
    follower = Follower(sent=after)
    last_sent = time.monotonic()
    yield retry_line()
    while True:
        row = read_row(run_id)
        chunks = follower.take(read_texts(run_id, follower.sent)) if follower.needs_texts(row) else []
        chunks += follower.catch_up(row)
        if chunks:
            last_sent = time.monotonic()
        yield from chunks
        if follower.done:
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"
        time.sleep(settings.API_EVENTS_POLL_SECONDS)


class SyncStream:
    """A WSGI stream holding one slot until it is closed. Django closes a streaming response's content when
    the response ends, even if it was never read: the slot comes back."""

    def __init__(self, run_id: Any, user_id: int, after: int) -> None:
        self._events = poll_stream(run_id, after)
        self._user_id = user_id
        self._open = True
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._events
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._events.close()
        give_slot(self._user_id)
