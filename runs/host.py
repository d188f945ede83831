"""The run host: one per worker process, running up to RUNS_PER_WORKER runs at once in threads.

django-q2 stays the cluster (ORM broker, schedules, `qcluster`), but its tasks only wake the host: the Run
table is the queue. A dispatcher thread claims queued runs fairly across users (claims are atomic, so a run
executes once however many hosts poll), and does the periodic work for all its runs in one query each per
tick: cancel flags, streamed text, heartbeats, and now and then the recovery of runs whose worker died.
A run's thread waits on its provider call, which runs on the process's asyncio loop and is aborted at once on
cancel; while it waits it holds no database connection (runs/dbpool.py: a host's connections are counted).
When the worker process stops (SIGTERM), the host claims nothing more, lets calls in flight finish for
RUN_STOP_GRACE_SECONDS, and puts the rest back in the queue to continue elsewhere from their first
unfinished step (`stop_gracefully`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from providers import aio

from . import dbpool, dispatch
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
        self._stopped = threading.Event()
        self._stopping = threading.Lock()
        self._last = {"flush": 0.0, "heartbeat": 0.0, "recovery": 0.0, "claim": 0.0}

    def start(self) -> RunHost:
        aio.set_idle(dbpool.idle)  # run threads hand their connection back while they wait on a provider
        # When the process exits (django-q2 stops its workers on SIGTERM), drain before the interpreter shuts
        # down: this hook runs before concurrent.futures refuses new work, which would fail every call.
        threading._register_atexit(self.stop_gracefully)  # type: ignore[attr-defined]
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
        while not self._stopped.is_set():
            try:
                if not threading.main_thread().is_alive() and not self._draining:  # ending without the hook
                    self._draining = True
                    threading.Thread(target=self.stop_gracefully, name="run-stop", daemon=True).start()
                self._tick()
            except Exception:  # the dispatcher must outlive a database hiccup
                log.exception("run host %s: tick failed", self.name)
                close_old_connections()
                time.sleep(1)
            self._wake.wait(settings.RUN_TICK_SECONDS)
            self._wake.clear()
        connection.close()

    def _due(self, what: str, every: float) -> bool:
        now = time.monotonic()
        if now - self._last[what] < every:
            return False
        self._last[what] = now
        return True

    def _tick(self) -> None:
        with self._lock:
            hosted = dict(self.hosted)
        # Heartbeats first: after a stall (a busy CPU, a database hiccup) this host's runs are fresh again
        # before any recovery looks at them.
        if hosted and self._due("heartbeat", settings.RUN_HEARTBEAT_SECONDS):
            self._heartbeat(hosted)
        free = self.free()
        if free > 0:
            for run_id in dispatch.claim(free, worker=self.name):
                self._start(str(run_id))
        if self._due("recovery", settings.RUN_RECOVERY_EVERY_SECONDS):  # idle hosts too: others' runs may be lost
            from .recovery import recover_stale_runs

            recover_stale_runs(alive=hosted)  # never this host's own runs: it is alive, it is looking
        if not hosted:
            return
        self._watch(hosted)
        if self._due("flush", settings.RUN_LIVE_FLUSH_SECONDS):
            self._flush(hosted)

    def _heartbeat(self, hosted: dict[str, RunControl]) -> None:
        """One statement for all hosted runs, written while they wait on their providers (a call may take
        minutes; RUN_STALE_SECONDS without a heartbeat means the host died)."""
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
            with dbpool.borrowed():
                pipeline.execute_claimed(run_id, control)
        except Exception:
            log.exception("run %s: the host could not execute it", run_id)
        finally:
            with self._lock:
                self.hosted.pop(run_id, None)
            self._wake.set()  # a slot is free: claim the next run now

    def stop_gracefully(self, grace: float | None = None) -> None:
        """The worker process is stopping: claim nothing more; each run ends its call in flight (and goes back
        to the queue before its next one); after the grace period the rest are cut short and go back too.
        Either way a requeued run resumes from its first unfinished step. Safe to call more than once."""
        with self._stopping:
            if self._stopped.is_set():
                return
            with self._lock:
                self._draining = True
                controls = list(self.hosted.values())
            for control in controls:
                control.drain()
            if controls:
                log.warning("run host %s stopping: %d run(s) finish their call, then requeue", self.name, len(controls))
            limit = time.monotonic() + (settings.RUN_STOP_GRACE_SECONDS if grace is None else grace)
            while time.monotonic() < limit and self.busy():
                time.sleep(0.1)
            with self._lock:
                late = list(self.hosted.values())
            for control in late:
                control.stop_for(Why.SHUTDOWN)  # aborted by us: never counted as the provider's failure
            self._pool.shutdown(wait=True)
            self._stopped.set()
            self._wake.set()
            self._thread.join(5)
            connection.close()
            dbpool.pool().close()

    def busy(self) -> bool:
        with self._lock:
            return bool(self.hosted)


_host: RunHost | None = None
_host_lock = threading.Lock()


def current() -> RunHost:
    """This process's host, started on first use."""
    global _host
    with _host_lock:
        if _host is None or _host.name != f"{socket.gethostname()}:{os.getpid()}":
            _host = RunHost(settings.RUNS_PER_WORKER).start()
        return _host


def hosted_here() -> list[str]:
    """The runs this process hosts (none if it hosts no runs): alive, whatever their heartbeat says."""
    with _host_lock:
        host = _host
    if host is None:
        return []
    with host._lock:
        return list(host.hosted)


def start_in_worker(**kwargs: Any) -> None:
    """django-q2's post_spawn: a new worker process starts hosting at once, so queued runs never wait for a
    task to be delivered to it. A SIGTERM sent to the worker itself (a whole process group stopped) drains
    too, then ends the process."""
    current().wake()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_signal)


def _stop_on_signal(signum: int, frame: Any) -> None:
    current().stop_gracefully()
    raise SystemExit(0)
