"""One hub per web process feeds every event stream the process serves (ASGI only). Each tick it reads the rows
of all the runs being followed in one query, and the new text of those that streamed some in a second, then
wakes their streams: a thousand clients following runs cost two queries per tick, not a thousand.

A stream that finds a gap (it was slow, or joined between ticks) reads what it misses itself, so no text is
ever skipped; the hub only saves it the query in the common case."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from runs.models import Run, RunText

from .events import KEEPALIVE_SECONDS, ROW_FIELDS, TEXT_FIELDS, Follower, give_slot, read_row, read_texts, retry_line

KEPT_TEXTS = 200  # recent text rows the hub keeps per run for streams that are a tick or two behind


class Hub:
    def __init__(self) -> None:
        self.watchers: dict[str, int] = {}
        self.rows: dict[str, dict[str, Any] | None] = {}
        self.texts: dict[str, list[dict[str, Any]]] = {}
        self.changed: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, run_id: str) -> None:
        self.watchers[run_id] = self.watchers.get(run_id, 0) + 1
        self.changed.setdefault(run_id, asyncio.Event())
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def unwatch(self, run_id: str) -> None:
        left = self.watchers.get(run_id, 0) - 1
        if left > 0:
            self.watchers[run_id] = left
            return
        for table in (self.watchers, self.rows, self.texts, self.changed):
            table.pop(run_id, None)

    async def _loop(self) -> None:
        while self.watchers:
            started = time.monotonic()
            try:
                known = {run_id: self._last_seq(run_id) for run_id in self.watchers}
                rows, texts = await sync_to_async(_read, thread_sensitive=False)(known)
            except Exception:  # a database hiccup: the streams wait for the next tick
                await asyncio.sleep(1)
                continue
            for run_id in list(self.watchers):
                if run_id not in known:  # first watched while this tick read: the next tick reads it
                    continue
                row = rows.get(run_id)
                new = texts.get(run_id, [])
                if row == self.rows.get(run_id, ...) and not new:
                    continue
                self.rows[run_id] = row
                if new:
                    self.texts[run_id] = (self.texts.get(run_id, []) + new)[-KEPT_TEXTS:]
                woken, self.changed[run_id] = self.changed[run_id], asyncio.Event()
                woken.set()
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, settings.API_EVENTS_POLL_SECONDS - elapsed))

    def _last_seq(self, run_id: str) -> int | None:
        """The seq the hub has seen for a run; None for a run it has not read yet (its streams read their own
        start, so the hub need not read the run's history)."""
        if self.texts.get(run_id):
            return int(self.texts[run_id][-1]["seq"])
        row = self.rows.get(run_id)
        return int(row["text_seq"]) if row else None


def _read(known: dict[str, int | None]) -> tuple[dict[str, dict[str, Any] | None], dict[str, list[dict[str, Any]]]]:
    """The rows of the followed runs, and the text after `known` of those that have more."""
    close_old_connections()  # this thread lives on: a dropped database connection must not stay broken
    rows: dict[str, dict[str, Any] | None] = {run_id: None for run_id in known}
    for row in Run.objects.filter(pk__in=list(known)).values("id", *ROW_FIELDS):
        rows[str(row.pop("id"))] = row
    grown = {
        run_id: seq
        for run_id, seq in known.items()
        if seq is not None and (row := rows[run_id]) is not None and row["text_seq"] > seq
    }
    texts: dict[str, list[dict[str, Any]]] = {}
    if grown:
        query = RunText.objects.filter(run_id__in=list(grown), seq__gt=min(grown.values())).order_by("run_id", "seq")
        for text in query.values("run_id", *TEXT_FIELDS):
            run_id = str(text.pop("run_id"))
            if text["seq"] > grown[run_id]:
                texts.setdefault(run_id, []).append(text)
    return rows, texts


_hubs: dict[int, Hub] = {}


def hub() -> Hub:
    """The hub of the running event loop (one per worker process)."""
    loop = asyncio.get_running_loop()
    return _hubs.setdefault(id(loop), Hub())


class AsyncStream:
    """An ASGI stream holding one slot until it ends or the client goes (Django then cancels it)."""

    def __init__(self, run_id: Any, user_id: int, after: int) -> None:
        self.run_id, self.user_id, self.after = str(run_id), user_id, after
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            give_slot(self.user_id)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._events()

    async def _events(self) -> AsyncIterator[str]:
        shared = hub()
        shared.watch(self.run_id)
        try:
            follower = Follower(sent=self.after)
            yield retry_line()
            changed = shared.changed[self.run_id]  # taken before reading: a change meanwhile wakes us at once
            row, texts = await sync_to_async(_start, thread_sensitive=False)(self.run_id, self.after)
            while True:
                chunks = follower.take(texts) + follower.catch_up(row)
                for chunk in chunks:
                    yield chunk
                if follower.done:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                changed = shared.changed[self.run_id]
                row, texts = shared.rows.get(self.run_id), shared.texts.get(self.run_id, [])
                if follower.needs_texts(row) and (not texts or texts[0]["seq"] > follower.sent + 1):
                    texts = await sync_to_async(read_texts, thread_sensitive=False)(self.run_id, follower.sent)
        finally:
            shared.unwatch(self.run_id)
            self.close()


def _start(run_id: str, after: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    close_old_connections()
    return read_row(run_id), read_texts(run_id, after)
