"""A fixed number of database connections per worker process, whatever RUNS_PER_WORKER is.

Django opens one connection per thread, and a host runs each of its runs in its own thread: left alone, 50
runs held 50 connections, idle while they waited on their providers, and 100 runs on two workers passed a
stock PostgreSQL's `max_connections`. Here a run's thread borrows one of RUN_DB_CONNECTIONS shared
connections for its database work and hands it back whenever it waits on a provider (`providers.aio.idle`
wraps every call and every pause), so the connections of a host are counted, not grown (docs/scaling.md).

A borrowed connection is checked before use (Django's health check: one `SELECT 1` when it had an error or
has been handed out again), so a connection the server dropped while it sat in the pool is replaced, not
failed on. `retrying` repeats a write that met a dropped connection after reconnecting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

log = logging.getLogger(__name__)
T = TypeVar("T")
DROPPED = (OperationalError, InterfaceError)  # what a connection the server closed raises


class Pool:
    """RUN_DB_CONNECTIONS connection objects, each used by one thread at a time, opened on first use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: queue.LifoQueue[BaseDatabaseWrapper | None] = queue.LifoQueue()
        for _ in range(size):
            self._free.put(None)

    def take(self) -> BaseDatabaseWrapper:
        wrapper = self._free.get()
        if wrapper is None:
            wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
            wrapper.inc_thread_sharing()  # used by whichever run thread holds it, one at a time
        else:
            wrapper.close_if_unusable_or_obsolete()  # arms the health check for its next query
        return wrapper

    def give(self, wrapper: BaseDatabaseWrapper) -> None:
        self._free.put(wrapper)

    def close(self) -> None:
        while True:
            try:
                wrapper = self._free.get_nowait()
            except queue.Empty:
                return
            if wrapper is not None:
                wrapper.close()


_local = threading.local()
_pool: Pool | None = None
_pool_lock = threading.Lock()


def pool() -> Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool(settings.RUN_DB_CONNECTIONS)
        return _pool


def _hold(wrapper: BaseDatabaseWrapper) -> None:
    _local.wrapper = wrapper
    connections[DEFAULT_DB_ALIAS] = wrapper


def _let_go() -> BaseDatabaseWrapper:
    wrapper: BaseDatabaseWrapper = _local.wrapper
    _local.wrapper = None
    del connections[DEFAULT_DB_ALIAS]  # a query now would open a connection of its own: none is made
    return wrapper


@contextmanager
def borrowed() -> Iterator[None]:
    """Run the block (a whole run) on a pooled connection, given back for good at the end."""
    for own in connections.all(initialized_only=True):  # one this thread opened earlier would linger
        own.close()
    _hold(pool().take())
    try:
        yield
    finally:
        if getattr(_local, "wrapper", None) is not None:
            pool().give(_let_go())


@contextmanager
def idle() -> Iterator[None]:
    """The thread waits on a provider: its pooled connection goes back to the pool meanwhile. A thread that
    holds none (the dispatcher, a run executed inline), or is inside a transaction, keeps what it has."""
    wrapper = getattr(_local, "wrapper", None)
    if wrapper is None or wrapper.in_atomic_block:
        yield
        return
    pool().give(_let_go())
    _local.idle = True
    try:
        yield
    finally:
        _local.idle = False
        _hold(pool().take())


@contextmanager
def briefly() -> Iterator[None]:
    """A write while the thread waits on a provider (a timeline event during a retry's pause): a pooled
    connection for the write alone, so the wait still holds none."""
    if not getattr(_local, "idle", False):
        yield
        return
    _hold(pool().take())
    try:
        yield
    finally:
        pool().give(_let_go())


def retrying(write: Callable[[], T], *, what: str, seconds: float | None = None) -> T:
    """Do a database write; if the connection was dropped (server restart, pg_terminate_backend, a network
    blip), reconnect and do it again, for up to RUN_DB_RETRY_SECONDS. Only for writes that may be repeated
    (updates to a value, not increments) and outside a transaction, whose rollback a retry could not redo."""
    limit = time.monotonic() + (settings.RUN_DB_RETRY_SECONDS if seconds is None else seconds)
    delay = 0.1
    while True:
        try:
            return write()
        except DROPPED as exc:
            if connection.in_atomic_block or time.monotonic() + delay > limit:
                raise
            log.warning("%s: the database connection was lost (%s); reconnecting", what, str(exc).strip()[:200])
            _reconnect()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _reconnect() -> None:
    try:
        connection.close()
    except Exception:  # closing a dead connection may fail too: it is dropped either way
        connection.connection = None


def held() -> Any:
    """The pooled connection this thread holds, or None (tests)."""
    return getattr(_local, "wrapper", None)
