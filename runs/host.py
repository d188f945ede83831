"""The run host: one per worker process, running up to RUNS_PER_WORKER runs at once in threads.

django-q2 stays the cluster (ORM broker, schedules, `qcluster`), but its tasks only wake the host: the Run
table is the queue. A dispatcher thread claims queued runs fairly across users (claims are atomic, so a run
executes once however many hosts poll), and does the periodic work for all its runs in one query each per
tick: cancel flags, streamed text, heartbeats, and now and then the recovery of runs whose worker died.
A run's thread waits on its provider call, which runs on the process's asyncio loop and is aborted at once on
cancel. When the worker process stops, its runs go back to the queue and continue elsewhere from their first
unfinished step.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from . import dispatch
from .control import RunControl, Why
from .live_text import save_texts
from .models import Run, Status

log = logging.getLogger(__name__)


class RunHost:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.hosted: dict[str, RunControl] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="run")
        self._thread = threading.Thread(target=self._loop, name="run-dispatcher", daemon=True)
        self._draining = False
        self._last = {"flush": 0.0, "heartbeat": 0.0, "recovery": 0.0, "claim": 0.0}

    def start(self) -> RunHost:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def free(self) -> int:
        with self._lock:
            return 0 if self._draining else self.capacity - len(self.hosted)

    # -- the dispatcher ----------------------------------------------------------------------------------
    def _warm_up(self) -> None:
        from providers.llm import warm_up

        try:
            warm_up()
        except Exception:  # a run will meet the same problem and say it plainly
            log.exception("run host %s: LiteLLM could not be loaded", self.name)

    def _loop(self) -> None:
        # Loading LiteLLM takes seconds: beside the claims, so a run queued at start-up starts at once.
        threading.Thread(target=self._warm_up, name="run-warm-up", daemon=True).start()
        while True:
            try:
                if not threading.main_thread().is_alive():
                    self._drain()
                    return
                self._tick()
            except Exception:  # the dispatcher must outlive a database hiccup
                log.exception("run host %s: tick failed", self.name)
                close_old_connections()
                time.sleep(1)
            self._wake.wait(settings.RUN_TICK_SECONDS)
            self._wake.clear()

    def _due(self, what: str, every: float) -> bool:
        now = time.monotonic()
        if now - self._last[what] < every:
            return False
        self._last[what] = now
        return True

    def _tick(self) -> None:
        free = self.free()
        if free > 0:
            for run_id in dispatch.claim(free, worker=self.name):
                self._start(str(run_id))
        if self._due("recovery", settings.RUN_RECOVERY_EVERY_SECONDS):  # idle hosts too: others' runs may be lost
            from .recovery import recover_stale_runs

            recover_stale_runs()
        with self._lock:
            hosted = dict(self.hosted)
        if not hosted:
            return
        self._watch(hosted)
        if self._due("flush", settings.RUN_LIVE_FLUSH_SECONDS):
            self._flush(hosted)
        if self._due("heartbeat", settings.RUN_HEARTBEAT_SECONDS):
            Run.objects.filter(pk__in=list(hosted), status=Status.RUNNING).update(heartbeat_at=timezone.now())

    def _watch(self, hosted: dict[str, RunControl]) -> None:
        """One query for all hosted runs: those asked to cancel, and those someone else ended."""
        rows = Run.objects.filter(pk__in=list(hosted)).filter(Q(cancel_requested=True) | ~Q(status=Status.RUNNING))
        for run_id, status in rows.values_list("pk", "status"):
            control = hosted.get(str(run_id))
            if control is not None:
                control.stop_for(Why.LOST if status != Status.RUNNING else Why.CANCEL)

    def _flush(self, hosted: dict[str, RunControl]) -> None:
        """The streamed text of every run that has new text: its RunText rows, and the live text for the page."""
        save_texts(list(hosted.values()))
        changed = []
        for run_id, control in hosted.items():
            live = control.take_live()
            if live is not None:
                changed.append(Run(pk=run_id, live_output=live[0], live_tokens=live[1]))
        if changed:  # only rows still running: a run that just ended keeps its cleared live text
            Run.objects.filter(status=Status.RUNNING).bulk_update(changed, ["live_output", "live_tokens"])

    def _start(self, run_id: str) -> None:
        control = RunControl(run_id)
        with self._lock:
            self.hosted[run_id] = control
        self._pool.submit(self._execute, run_id, control)

    def _execute(self, run_id: str, control: RunControl) -> None:
        from . import pipeline

        try:
            pipeline.execute_claimed(run_id, control)
        except Exception:
            log.exception("run %s: the host could not execute it", run_id)
        finally:
            with self._lock:
                self.hosted.pop(run_id, None)
            connection.close()
            self._wake.set()  # a slot is free: claim the next run now

    def _drain(self) -> None:
        """The worker process is stopping: every hosted run stops at once and goes back to the queue."""
        with self._lock:
            self._draining = True
            controls = list(self.hosted.values())
        for control in controls:
            control.stop_for(Why.SHUTDOWN)
        if controls:
            log.warning("run host %s stopping: %d run(s) go back to the queue", self.name, len(controls))
        self._pool.shutdown(wait=True)
        connection.close()


_host: RunHost | None = None
_host_lock = threading.Lock()


def current() -> RunHost:
    """This process's host, started on first use."""
    global _host
    with _host_lock:
        if _host is None or _host.name != f"{socket.gethostname()}:{os.getpid()}":
            _host = RunHost(settings.RUNS_PER_WORKER).start()
        return _host


def start_in_worker(**kwargs: Any) -> None:
    """django-q2's post_spawn: a new worker process starts hosting at once, so queued runs never wait for a
    task to be delivered to it."""
    current().wake()
