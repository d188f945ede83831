"""One asyncio loop per process, in a daemon thread. Provider calls run on it so that the thread hosting a run
can cut a call short at once (cancel, deadline): cancelling the task aborts the HTTP request mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid = 0
# What a thread does with its resources while it waits on a provider: the run host hands its database
# connection back to the pool (runs/dbpool.py). Nothing by default (the web, inline runs, tests).
_idle: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


def set_idle(factory: Callable[[], contextlib.AbstractContextManager[Any]]) -> None:
    global _idle
    _idle = factory


def idle() -> contextlib.AbstractContextManager[Any]:
    """Wrap every wait on a provider (a call, a pause between attempts) in this."""
    return _idle()


def loop() -> asyncio.AbstractEventLoop:
    """The process's loop, started on first use (and again in a forked child, which has no loop thread)."""
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid():
            _loop = asyncio.new_event_loop()
            _pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="provider-calls", daemon=True).start()
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, loop())
