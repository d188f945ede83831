"""The engine under faults (issue 21): `python -m bench faults [--quick]`.

A real qcluster with default settings, the stand-in provider from tests/support failing at random (429 with
Retry-After, 500, 503, connection resets, cut streams; then hangs), on SQLite and on PostgreSQL (each in a
process of its own). Each row counts runs / succeeded / failed / lost (never finished) / duplicated provider
conversations (one conversation answered in full twice) / recovery time, and checks spend against budgets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from bench.engine import ROOT, Bench

SEED = 21
# Hangs cost one attempt each at these limits (a run's deadline is far longer).
LIMITS = {"PROVIDER_FIRST_BYTE_SECONDS": "5", "PROVIDER_IDLE_SECONDS": "3", "RUNS_ACTIVE_PER_USER": "20"}
PG_URL = "postgres://postgres@127.0.0.1:5432/awp_bench_faults"


class FaultBench(Bench):
    def __init__(self, quick: bool) -> None:
        os.environ.update(LIMITS)
        super().__init__(quick)
        self.users = self.users[:10]
        self.header = ("Fault", "runs", "succeeded", "failed", "lost", "duplicated", "recovery", "notes")
        self.table: list[tuple[str, ...]] = []

    # -- counting -----------------------------------------------------------------------------------------
    def duplicated(self, since: int) -> int:
        answered = Counter(
            json.dumps(r["body"].get("messages"), sort_keys=True)
            for r in self.server.requests[since:]
            if r.get("ok") and r["body"].get("max_tokens") != 1  # connection checks are alike by design
        )
        return sum(n - 1 for n in answered.values() if n > 1)

    def outcome(self, name: str, ids: list[Any], since: int, recovery: str = "—", notes: str = "") -> dict[str, Any]:
        from runs.models import Run, Status

        rows = list(Run.objects.filter(pk__in=ids).values("status", "cost_usd", "budget_usd", "reason"))
        finished = [r for r in rows if r["status"] not in (Status.QUEUED, Status.RUNNING)]
        ok = sum(r["status"] == Status.SUCCEEDED for r in rows)
        over = sum(1 for r in rows if r["budget_usd"] is not None and r["cost_usd"] > r["budget_usd"])
        failed = len(finished) - ok
        reasons = Counter(r["reason"][:70] for r in finished if r["status"] != Status.SUCCEEDED)
        extra = f"; over budget: {over}" if over else "; spend ≤ budget"
        if reasons:
            extra += "; not succeeded: " + ", ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
        result = {
            "runs": len(ids), "ok": ok, "failed": failed, "lost": len(ids) - len(finished),
            "duplicated": self.duplicated(since), "over": over,
        }  # fmt: skip
        self.table.append(
            (name, str(len(ids)), str(ok), str(failed), str(result["lost"]), str(result["duplicated"]), recovery,
             (notes + extra).strip("; "))
        )  # fmt: skip
        return result

    def attempts(self, ids: list[Any]) -> list[dict[str, Any]]:
        from runs.models import Artifact

        found = []
        for artifact in Artifact.objects.filter(run_id__in=ids, name="trace.json"):
            with artifact.file.open("rb") as handle:
                trace = json.loads(handle.read())
            for step in trace.get("steps", []):
                for call in step.get("calls", []):
                    found += call.get("attempts", [])
        return found

    def load(self, count: int, label: str, timeout: float) -> tuple[list[Any], int]:
        since = len(self.server.requests)
        jobs = [(f"{label} {i:04d}", self.users[i % len(self.users)]) for i in range(count)]
        ids = self.submit_many(jobs)
        with contextlib.suppress(TimeoutError):  # what did not finish is counted as lost
            self.wait(ids, timeout)
        return ids, since

    # -- rows ----------------------------------------------------------------------------------------------
    def transient(self, count: int) -> None:
        from tests.support.fake_llm import Faults

        self.server.faults = Faults(rate=0.15, seed=SEED)
        self.server.fault_counts.clear()
        started = time.monotonic()
        ids, since = self.load(count, "Transient", 120 + count)
        self.server.faults = None
        sent = len(self.server.requests) - since
        faults = sum(self.server.fault_counts.values())
        self.outcome(
            "~15% transient faults (429 Retry-After, 500, 503, reset, cut stream)", ids, since,
            notes=f"{faults} of {sent} requests faulted ({faults / max(sent, 1):.0%}): "
            f"{dict(self.server.fault_counts)}; all ended in {time.monotonic() - started:.0f} s",
        )  # fmt: skip

    def hangs(self, count: int) -> None:
        from tests.support.fake_llm import Faults

        self.server.faults = Faults(rate=0.1, seed=SEED, kinds=("hang", "stall"))
        self.server.fault_counts.clear()
        ids, since = self.load(count, "Hangs", 180 + count)
        self.server.faults = None
        hung = sum(self.server.fault_counts.values())
        timeouts = [a for a in self.attempts(ids) if a["status"] == "timeout"]
        slowest = max((a["latency_ms"] for a in timeouts), default=0) / 1000
        self.outcome(
            "~10% hangs (no answer; headers then silence)", ids, since,
            notes=f"{hung} hangs sent, {len(timeouts)} attempts ended by a time limit (longest {slowest:.1f} s; "
            f"limits: first byte {LIMITS['PROVIDER_FIRST_BYTE_SECONDS']} s, idle {LIMITS['PROVIDER_IDLE_SECONDS']} s)",
        )  # fmt: skip

    def cancel_storm(self, count: int) -> None:
        from runs import services
        from runs.models import Run, Status

        self.server.default = {"delay": 10}
        ids, since = (
            self.submit_many([(f"Storm {i}", self.users[i % 10]) for i in range(count)]),
            len(self.server.requests),
        )
        time.sleep(3)
        asked = time.monotonic()
        for run in Run.objects.filter(pk__in=ids):
            services.request_cancel(run)
        with contextlib.suppress(TimeoutError):
            self.wait(ids, 30)
        took = time.monotonic() - asked
        self.server.default = {}
        cancelled = Run.objects.filter(pk__in=ids, status=Status.CANCELLED).count()
        self.outcome(
            "Cancel storm (every run cancelled mid-call)", ids, since, recovery=f"{took:.1f} s",
            notes=f"{cancelled} cancelled (succeeded/failed counts runs that ended before the cancel)",
        )  # fmt: skip

    def kill_worker(self, count: int) -> None:
        """kill -9 of one worker process mid-load; recovery is kill → every run ended."""
        ids, since = self._mid_load(count, "Kill", self._kill_a_worker)
        self._ended_row("kill -9 of a worker", ids, since)

    def sigterm(self, count: int) -> None:
        """SIGTERM to the cluster mid-load, then a new cluster; recovery is SIGTERM → every run ended."""

        def stop_and_restart() -> None:
            assert self.cluster is not None
            os.killpg(self.cluster.pid, signal.SIGTERM)
            self.cluster.wait(60)
            self.start_cluster(warm=False)

        ids, since = self._mid_load(count, "Term", stop_and_restart)
        self._ended_row("SIGTERM of the cluster, then a new cluster", ids, since)

    def terminate_db(self, count: int) -> None:
        from django.db import connection

        def terminate() -> None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )

        ids, since = self._mid_load(count, "Terminate", terminate)
        self._ended_row("Every DB connection terminated (pg_terminate_backend)", ids, since)

    def _mid_load(self, count: int, label: str, fault: Any) -> tuple[list[Any], int]:
        self.server.default = {"delay": 3}
        since = len(self.server.requests)
        ids = self.submit_many([(f"{label} {i}", self.users[i % 10]) for i in range(count)])
        time.sleep(4)
        self.fault_at = time.monotonic()
        fault()
        return ids, since

    def _ended_row(self, name: str, ids: list[Any], since: int) -> None:
        try:
            self.wait(ids, 150)
            recovery = f"{time.monotonic() - self.fault_at:.0f} s"
        except TimeoutError:
            recovery = "> 150 s"
        self.server.default = {}
        self.outcome(name, ids, since, recovery=recovery)

    def _kill_a_worker(self) -> None:
        assert self.cluster is not None
        children = subprocess.run(
            ["pgrep", "-P", str(self.cluster.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        workers = [int(pid) for pid in children]
        os.kill(workers[-1], signal.SIGKILL)

    def start_cluster(self, warm: bool = True) -> None:
        if warm:
            super().start_cluster()
            return
        log = (self.tmp / "qcluster.log").open("ab")
        self.cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env={**os.environ, **self.env}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def fault_row(self, name: str, function: Any, *args: Any) -> None:
        try:
            function(*args)
        except Exception as exc:
            self.table.append((name, "—", "—", "—", "—", "—", "—", f"the measure failed: {type(exc).__name__}: {exc}"))

    def section(self, backend: str) -> str:
        lines = [
            f"### {backend}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|" + "---|" * len(self.header),
            *["| " + " | ".join(row) + " |" for row in self.table],
        ]
        return "\n".join(lines)


def one(quick: bool) -> str:
    """The suite on the database in BENCH_DATABASE_URL (or a scratch SQLite file)."""
    bench = FaultBench(quick)
    backend = "PostgreSQL" if bench.env["DATABASE_URL"].startswith("postgres") else "SQLite (WAL)"
    try:
        bench.start_cluster()
        bench.fault_row("transient", bench.transient, 20 if quick else 200)
        if not quick:
            bench.fault_row("hangs", bench.hangs, 50)
            bench.fault_row("cancel storm", bench.cancel_storm, 50)
            bench.fault_row("kill -9", bench.kill_worker, 30)
            if backend == "PostgreSQL":
                bench.fault_row("terminate", bench.terminate_db, 30)
            bench.fault_row("sigterm", bench.sigterm, 20)
    finally:
        bench.stop()
    return bench.section(backend)


def main(quick: bool = False) -> str:
    parts = [
        "## Provider and infrastructure faults (issue 21)",
        "",
        "`python -m bench faults`: a real `qcluster` (Q_WORKERS=2, RUNS_PER_WORKER=50), 10 users, the stand-in "
        f"provider failing at random (seed {SEED}); per-attempt limits {LIMITS['PROVIDER_FIRST_BYTE_SECONDS']} s "
        f"first byte and {LIMITS['PROVIDER_IDLE_SECONDS']} s idle, RUNS_ACTIVE_PER_USER=20 so each user's 20 runs "
        "queue at once. *Duplicated*: a provider conversation answered in full twice (a resume that paid again). "
        "*Lost*: never finished within the row's wait. Disk full is not measured here: it needs a size-limited "
        "mount for DATA_DIR.",
    ]
    backends = [("SQLite", "")] if quick else [("SQLite", ""), ("PostgreSQL", PG_URL)]
    for name, url in backends:
        env = {**os.environ, "BENCH_DATABASE_URL": url} if url else {
            k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL"
        }  # fmt: skip
        if url:
            _create_database(url)
        code = f"import bench.faults as f; print('\\n@@@\\n' + f.one(quick={quick}))"
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode == 0 and "@@@" in done.stdout:
            parts += ["", done.stdout.split("@@@", 1)[1].strip()]
        else:
            parts += ["", f"### {name}", "", f"Not measured: {done.stderr.strip().splitlines()[-1:]}"]
    return "\n".join(parts)


def _create_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"], capture_output=True, check=False
    )


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
