"""1000 clients following runs over Server-Sent Events on one `make run` server (issue 24): `python -m bench
events [--quick]`.

It starts the platform exactly as `make run` does (`scripts/entrypoint.sh all`: prepare, the qcluster and
gunicorn with uvicorn workers, default settings) on SQLite in a temp dir. The model is the stand-in provider
from tests/support (its own process, OpenAI-compatible over HTTP, one streamed chunk per word), so every run
is real: queued, claimed by the worker, streaming text that the engine stores as RunText rows, and the
clients' `output` events are that text. 20 runs are each followed by 50 clients holding their owner's token
(20 users, so the per-user cap of 100 streams per process is not what is measured; 100 runs at once would
keep both cores busy with the runs themselves): 1000 streams, opened at once from ONE client process on raw
asyncio sockets. Each client reads until its run's `end` (or a bounded time) and is checked against the
database: status 200, `output` ids 1..N without a gap, its text identical to the run's RunText rows (each
run's text starts with its own topic), and `end` with the run's status.

Pages (the catalog and a finished run's page, one client, back to back) are timed in three phases of the same
run: the server idle (the unloaded baseline), the runs streaming with no one following them, and the same
number of runs streaming with the clients following them. It reports the ratios, the server processes'
CPU-seconds in each phase and the load average. `--quick` (a smoke for CI) follows 5 runs with 10 clients
each; BENCH_EVENTS_RUNS, BENCH_EVENTS_PER_RUN and BENCH_EVENTS_CHUNK_DELAY change the mix.

Subcommands run inside the scratch environment (Django set up): `seed`, `start`, `check`; `fake` serves the
stand-in provider; `clients` is the client process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pages import Endpoint, _free_port, _get, _pct, _wait_until_up

ROOT = Path(__file__).resolve().parent.parent
# Runs at once, clients per run, words per model call, seconds between streamed words, unloaded page rounds,
# and the longest a client follows its run.
FULL: dict[str, Any] = {
    "runs": 20,
    "per_run": 50,
    "words": 10,
    "chunk_delay": 0.1,
    "baseline": 100,
    "follow_seconds": 300,
}
QUICK: dict[str, Any] = {
    "runs": 5,
    "per_run": 10,
    "words": 10,
    "chunk_delay": 0.05,
    "baseline": 30,
    "follow_seconds": 120,
}
PAGE_RATIO = 2.0
WORKFLOW = "learn-agentic-ai"
MODEL = "openai/gpt-4o-mini"


# --- inside the scratch environment (Django set up) -----------------------------------------------------


def seed(users: int, base_url: str) -> dict[str, Any]:
    """Users with the student role, one read+run token each, a browser session for the pages, the stand-in
    provider's connection, and one finished run (its page is the run page timed)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.test import Client
    from django.utils import timezone

    from api.models import Scope
    from api.tokens import create_token
    from providers import services as provider_services
    from providers.models import ConnectionStatus, ProviderConnection
    from settings_app.roles import STUDENT

    provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="Stand-in", api_key="sk-bench-0123456789abcdefghijkl",
        api_base=base_url, allow_private_network=True,
    )  # fmt: skip
    # Checked moments ago (as the engine bench does): runs make no check call, every call is a step's.
    ProviderConnection.objects.update(status=ConnectionStatus.CONNECTED, last_tested_at=timezone.now())
    User = get_user_model()
    User.objects.bulk_create(
        [User(username=f"follower{i:04d}", password=make_password(None)) for i in range(users)], ignore_conflicts=True
    )
    people = list(User.objects.filter(username__startswith="follower").order_by("username"))
    Group.objects.get(name=STUDENT).user_set.add(*people)
    tokens = [create_token(user=u, name="bench", scope=Scope.RUN, expires_in_days=1).secret for u in people]
    client = Client()
    client.force_login(people[0])
    return {
        "users": [u.pk for u in people],
        "tokens": tokens,
        "session": client.cookies["sessionid"].value,
    }


def start(user_ids: list[int], tag: str) -> list[str]:
    """One test run per user, submitted from 8 threads (as the engine bench does); the run ids in order."""
    from concurrent.futures import ThreadPoolExecutor

    from django.contrib.auth import get_user_model
    from django.db import connection

    from catalog.models import Workflow
    from runs import services
    from runs.models import Mode

    version = Workflow.objects.get(slug=WORKFLOW).latest_version
    assert version is not None
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=user_ids)}

    def one(index: int) -> str:
        try:
            run = services.start_run(
                workflow_version=version, user=users[user_ids[index]], inputs={"topic": f"{tag} {index:04d}"},
                mode=Mode.TEST, models=[MODEL],
            )  # fmt: skip
            return str(run.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(len(user_ids))))


def check(run_ids: list[str]) -> dict[str, Any]:
    """Per run: its status, its last text seq and the SHA-256 of its streamed text in order (RunText rows)."""
    from runs.models import Run, RunText

    out: dict[str, Any] = {}
    for run in Run.objects.filter(pk__in=run_ids).values("id", "status", "text_seq"):
        texts = RunText.objects.filter(run_id=run["id"]).order_by("seq").values_list("text", flat=True)
        digest = hashlib.sha256("".join(texts).encode()).hexdigest()
        out[str(run["id"])] = {"status": run["status"], "text_seq": run["text_seq"], "sha": digest}
    return out


def serve_fake(words: int, chunk_delay: float) -> None:
    """The stand-in provider: every call streams the run's topic, `words` words and what a well-formed answer
    adds, one chunk per word, `chunk_delay` seconds apart. The topic (unique per run) makes each run's text its
    own, so a client shown another run's text is caught. Prints its base URL, then serves until killed."""
    import re

    sys.path.insert(0, str(ROOT))
    from tests.support.fake_llm import FakeLLM

    topic = re.compile(r"\b(?:Warm-up|Alone|Followed) \d{4}\b")

    class StandIn(FakeLLM):
        def _content(self, body: dict[str, Any], entry: dict[str, Any], prefix: str) -> str:
            text = super()._content(body, entry, prefix)
            found = topic.search(json.dumps(body.get("messages", [])))
            return f"[{found.group(0)}] {text}" if found else text

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait below
    server = StandIn("openai")
    text = " ".join(f"word{i}" for i in range(words)) + "\n\n"
    server.default = {"content": text, "well_formed": True, "chunk_delay": chunk_delay}
    server.start()
    print(server.base_url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


# --- the client process ---------------------------------------------------------------------------------


async def _follow(port: int, run_id: str, token: str, deadline: float, opened: list[int]) -> dict[str, Any]:
    """`opened`: [streams answered 200 so far, streams open now, the most open at once]."""
    """One client: GET the run's events with its owner's token, read until `end` (or the deadline)."""
    result: dict[str, Any] = {"run": run_id, "status": 0, "outputs": 0, "ids_ok": True, "end": None}
    started = time.perf_counter()
    writer, counted = None, False
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(
            f"GET /api/v1/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), max(1.0, deadline - time.monotonic()))
        result["status"] = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            header, _, value = line.decode("latin-1").partition(":")
            headers[header.strip().lower()] = value.strip()
        result["connect_ms"] = (time.perf_counter() - started) * 1000
        if result["status"] != 200:
            length = int(headers.get("content-length", "0"))
            result["body"] = (await reader.readexactly(length)).decode(errors="replace")[:300] if length else ""
            return result
        opened[0] += 1
        opened[1] += 1
        counted = True
        opened[2] = max(opened[2], opened[1])
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        buffer, text, expected = "", [], 1
        while time.monotonic() < deadline:
            if chunked:
                size_line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                data = await reader.readexactly(size + 2)
                piece = data[:-2]
            else:
                piece = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
                if not piece:
                    break
            buffer += piece.decode()
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields: dict[str, str] = {}
                for line_text in block.split("\n"):
                    if line_text and not line_text.startswith(":"):
                        key, _, value = line_text.partition(":")
                        fields[key] = value[1:] if value.startswith(" ") else value
                name = fields.get("event")
                if name is None:
                    continue  # the retry line
                result.setdefault("first_event_ms", (time.perf_counter() - started) * 1000)
                if name == "output":
                    result["outputs"] += 1
                    if int(fields.get("id", "-1")) != expected:
                        result["ids_ok"] = False
                    expected += 1
                    text.append(json.loads(fields["data"])["text"])
                elif name in ("end", "timeout"):
                    result["end"] = name
                    result["end_id"] = int(fields.get("id", "-1"))
                    result["end_status"] = json.loads(fields["data"]).get("status")
                    result["end_s"] = time.perf_counter() - started
                    result["sha"] = hashlib.sha256("".join(text).encode()).hexdigest()
                    return result
    except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if writer is not None:
            writer.close()
        if counted:
            opened[1] -= 1
    return result


async def _clients(spec: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + spec["follow_seconds"]
    opened = [0, 0, 0]
    marker = Path(spec["marker"])

    async def watch() -> None:  # tells the page timer when every stream has been answered
        while opened[0] < len(spec["clients"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        marker.write_text(str(opened[0]))

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*[_follow(spec["port"], r, t, deadline, opened) for r, t in spec["clients"]])
    watcher.cancel()
    if not marker.exists():
        marker.write_text(str(opened[0]))
    Path(spec["peak"]).write_text(str(opened[2]))
    return list(results)


def run_clients(spec_path: str) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(Path(spec_path).read_text())
    results = asyncio.run(_clients(spec))
    Path(spec["out"]).write_text(json.dumps(results))


# --- measuring (this process never sets Django up) ------------------------------------------------------


class Platform:
    """`scripts/entrypoint.sh all` (what `make run` runs) on a scratch data dir, with the stand-in provider."""

    def __init__(self, sizes: dict[str, Any]) -> None:
        self.sizes = sizes
        self.dir = Path(tempfile.mkdtemp(prefix="awp-bench-events-"))
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DEBUG")}
        env.update(
            PYTHON=sys.executable,
            DATA_DIR=str(self.dir),
            ENV_FILE=str(self.dir / ".env"),
            DATABASE_URL=f"sqlite:///{self.dir / 'bench.sqlite3'}",
            HOST="127.0.0.1",
            PORT=str(self.port),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
        )
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.platform: subprocess.Popen[bytes] | None = None

    def django(self, *args: str, stdin: str = "") -> Any:
        """A subcommand of this module in the scratch environment; its last stdout line, as JSON."""
        out = subprocess.run(
            [sys.executable, "-m", "bench.events", *args],
            cwd=ROOT,
            env={**self.env, "DJANGO_SETTINGS_MODULE": "config.settings"},
            input=stdin,
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start(self) -> None:
        fake = subprocess.Popen(
            [sys.executable, "-m", "bench.events", "fake", str(self.sizes["words"]), str(self.sizes["chunk_delay"])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self.procs.append(fake)
        assert fake.stdout is not None
        self.base_url = fake.stdout.readline().decode().strip()
        log = (self.dir / "platform.log").open("wb")
        self.platform = subprocess.Popen(
            [str(ROOT / "scripts" / "entrypoint.sh"), "all"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(self.platform)
        _wait_until_up(self.port, self.platform, self.dir / "platform.log")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                # The entrypoint forwards SIGTERM to the web server and the worker itself (signalled twice, the
                # cluster may hang); the other processes get it as a group.
                if proc is self.platform:
                    os.kill(proc.pid, signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def cpu(self) -> dict[str, float]:
        """CPU-seconds (user + system) so far of the web server's processes and of the worker's."""
        assert self.platform is not None
        children: dict[int, list[int]] = {}
        stats: dict[int, list[str]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                stats[int(entry.name)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry.name))
        tick = os.sysconf("SC_CLK_TCK")
        totals = {"web": 0.0, "worker": 0.0}
        for top in children.get(self.platform.pid, []):
            try:
                kind = "web" if "gunicorn" in Path(f"/proc/{top}/cmdline").read_text() else "worker"
            except OSError:
                continue
            todo = [top]
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                if pid in stats:
                    totals[kind] += (int(stats[pid][11]) + int(stats[pid][12])) / tick
        return totals

    def unfinished(self, run_ids: list[str]) -> int:
        """How many of these runs are queued or running: one read of the SQLite file (no Django here, and no
        process started per look, which would load the machine being measured)."""
        with sqlite3.connect(f"file:{self.dir / 'bench.sqlite3'}?mode=ro", uri=True, timeout=30) as db:
            hexes = json.dumps([run_id.replace("-", "") for run_id in run_ids])
            query = "SELECT COUNT(*) FROM runs_run WHERE id IN (SELECT value FROM json_each(?)) AND status IN (?, ?)"
            return int(db.execute(query, (hexes, "queued", "running")).fetchone()[0])

    def wait_runs(self, run_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.unfinished(run_ids) and time.monotonic() < deadline:
            time.sleep(0.5)


def _time_pages(port: int, endpoints: list[Endpoint], cookie: str, until: Any, pause: float = 0.05) -> list[Any]:
    """One client, keep-alive, the pages in turn until `until()` is true: (page name, ms, when)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples: list[Any] = []
    try:
        while not until():
            for endpoint in endpoints:
                samples.append((endpoint.name, _get(conn, endpoint, cookie), time.monotonic()))
            time.sleep(pause)
    finally:
        conn.close()
    return samples


def _summary(samples: list[Any], name: str) -> tuple[float, float, int, float]:
    """p50, p95, how many, max."""
    values = [ms for page, ms, _ in samples if page == name]
    if not values:
        return float("nan"), float("nan"), 0, float("nan")
    return statistics.median(values), _pct(values, 0.95), len(values), max(values)


def sizes_for(quick: bool) -> dict[str, Any]:
    """FULL or QUICK; BENCH_EVENTS_RUNS and BENCH_EVENTS_PER_RUN change the counts (e.g. a tiny try)."""
    sizes = dict(QUICK if quick else FULL)
    for key in ("runs", "per_run", "chunk_delay"):
        sizes[key] = type(sizes[key])(os.environ.get(f"BENCH_EVENTS_{key.upper()}", sizes[key]))
    return sizes


def measure(quick: bool) -> dict[str, Any]:
    sizes = sizes_for(quick)
    platform = Platform(sizes)
    try:
        started = time.monotonic()
        platform.start()
        seeded = platform.django("seed", str(sizes["runs"]), platform.base_url)
        users, tokens = seeded["users"], seeded["tokens"]
        cookie = f"sessionid={seeded['session']}"
        # Warm up: one run through (the worker loads LiteLLM), then every page a few times in both web workers.
        warm = platform.django("start", "Warm-up", stdin=json.dumps(users[:1]))
        platform.wait_runs(warm, 120)
        endpoints = [Endpoint("catalog", "/", "student"), Endpoint("run page", f"/runs/{warm[0]}/", "student")]
        count = [0]

        def times(n: int) -> Any:
            def done() -> bool:
                count[0] += 1
                return count[0] > n

            count[0] = 0
            return done

        _time_pages(platform.port, endpoints, cookie, times(10), pause=0)
        up_seconds = time.monotonic() - started

        # 1. Unloaded: the server idle.
        cpu0, t0 = platform.cpu(), time.monotonic()
        idle = _time_pages(platform.port, endpoints, cookie, times(sizes["baseline"]))
        cpu1, t1 = platform.cpu(), time.monotonic()

        # 2. The same number of runs streaming, nobody following them.
        alone_ids = platform.django("start", "Alone", stdin=json.dumps(users))
        cpu2, t2 = platform.cpu(), time.monotonic()
        runs_only = _time_pages(platform.port, endpoints, cookie, lambda: not platform.unfinished(alone_ids))
        cpu3, t3 = platform.cpu(), time.monotonic()
        platform.wait_runs(alone_ids, 300)
        alone_checked = platform.django("check", stdin=json.dumps(alone_ids))

        # 3. The same again, each run followed by `per_run` clients holding its owner's token.
        run_ids = platform.django("start", "Followed", stdin=json.dumps(users))
        marker, out = platform.dir / "all-open", platform.dir / "clients.json"
        spec = {
            "port": platform.port,
            "clients": [(run_ids[i], tokens[i]) for _ in range(sizes["per_run"]) for i in range(len(run_ids))],
            "follow_seconds": sizes["follow_seconds"],
            "marker": str(marker),
            "peak": str(platform.dir / "peak"),
            "out": str(out),
        }
        (platform.dir / "spec.json").write_text(json.dumps(spec))
        cpu4, t4 = platform.cpu(), time.monotonic()
        clients = subprocess.Popen(
            [sys.executable, "-m", "bench.events", "clients", str(platform.dir / "spec.json")],
            cwd=ROOT,
            start_new_session=True,
        )
        platform.procs.append(clients)
        loaded = _time_pages(platform.port, endpoints, cookie, lambda: clients.poll() is not None)
        cpu5, t5 = platform.cpu(), time.monotonic()
        load = os.getloadavg()
        all_open_at = marker.stat().st_mtime if marker.exists() else None
        peak_file = platform.dir / "peak"
        opened = int(peak_file.read_text()) if peak_file.exists() else 0
        results = json.loads(out.read_text()) if out.exists() else []
        checked = platform.django("check", stdin=json.dumps(run_ids))
        if os.environ.get("BENCH_EVENTS_KEEP"):  # the raw figures, to look into
            kept = {"clients": results, "runs": checked, "loaded": loaded, "all_open_at": all_open_at}
            Path(os.environ["BENCH_EVENTS_KEEP"]).write_text(json.dumps(kept))
        log = (platform.dir / "platform.log").read_text(errors="replace")
        server_errors = log.count("Traceback")
    finally:
        platform.stop()
    # monotonic → wall clock for the marker's time
    wall_offset = time.time() - time.monotonic()
    steady = [s for s in loaded if all_open_at is not None and s[2] + wall_offset >= all_open_at]
    return {
        "sizes": sizes,
        "up_seconds": up_seconds,
        "idle": idle,
        "runs_only": runs_only,
        "loaded": loaded,
        "steady": steady,
        "cpu": {
            "idle": (cpu1["web"] - cpu0["web"], cpu1["worker"] - cpu0["worker"], t1 - t0),
            "runs_only": (cpu3["web"] - cpu2["web"], cpu3["worker"] - cpu2["worker"], t3 - t2),
            "loaded": (cpu5["web"] - cpu4["web"], cpu5["worker"] - cpu4["worker"], t5 - t4),
        },
        "load": load,
        "opened": opened,
        "clients": results,
        "checked": checked,
        "alone_checked": alone_checked,
        "server_errors": server_errors,
    }


def report(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    clients: list[dict[str, Any]] = result["clients"]
    checked = result["checked"]
    total = sizes["runs"] * sizes["per_run"]
    ok200 = sum(1 for c in clients if c["status"] == 200)

    def complete(c: dict[str, Any]) -> bool:
        run = checked.get(c["run"], {})
        return bool(
            c["status"] == 200
            and c["end"] == "end"
            and c["ids_ok"]
            and c.get("end_id") == run.get("text_seq")
            and c.get("sha") == run.get("sha")
            and c.get("end_status") == run.get("status")
        )

    full = sum(1 for c in clients if complete(c))

    def why(c: dict[str, Any]) -> str:
        run = checked.get(c["run"], {})
        if c["status"] != 200:
            return f"answered {c['status'] or 'nothing'}"
        if c["end"] is None:
            return "no `end` (" + c.get("error", "the stream closed or the time ran out").split(":")[0] + ")"
        if c["end"] == "timeout":
            return "`timeout` instead of `end`"
        if c.get("end_status") != run.get("status"):
            return f"`end` said {c.get('end_status')!r}, the run is {run.get('status')!r}"
        if not c["ids_ok"]:
            return "a gap in the `output` ids"
        return "text different from the run's"

    reasons: dict[str, int] = {}
    for c in clients:
        if not complete(c):
            reasons[why(c)] = reasons.get(why(c), 0) + 1
    statuses: dict[str, int] = {}
    for c in clients:
        key = str(c["status"] or c.get("error", "no answer")[:60])
        statuses[key] = statuses.get(key, 0) + 1
    errors = sorted({c["error"] for c in clients if "error" in c})[:3]
    bodies = sorted({c["body"] for c in clients if c.get("body")})[:2]
    connect = [c["connect_ms"] for c in clients if "connect_ms" in c]
    first = [c["first_event_ms"] for c in clients if "first_event_ms" in c]
    outputs = [c["outputs"] for c in clients if c["status"] == 200]
    run_states: dict[str, int] = {}
    for run in checked.values():
        run_states[run["status"]] = run_states.get(run["status"], 0) + 1
    lasted = [c["end_s"] for c in clients if "end_s" in c]

    def pct(values: list[float]) -> str:
        if not values:
            return "—"
        return f"p50 {statistics.median(values):.0f} / p95 {_pct(values, 0.95):.0f} / max {max(values):.0f} ms"

    lines = [
        "| Measure | Result | Target | Met |",
        "|---|---|---|---|",
        f"| Streams answered 200 | {ok200}/{total}"
        + (f" (others: {', '.join(f'{k}: {v}' for k, v in statuses.items() if k != '200')})" if ok200 < total else "")
        + f" | {total}/{total} | {'met' if ok200 == total else '**not met**'} |",
        f"| Streams that got every event of their run through `end` (ids 1..N, text = the run's RunText rows, "
        f"end status = the run's) | {full}/{total}"
        + (f" (the others: {'; '.join(f'{n}: {k}' for k, n in reasons.items())})" if reasons else "")
        + f" | {total}/{total} | {'met' if full == total else '**not met**'} |",
        f"| Streams open at once (the most at one moment) | {result['opened']}/{total} | {total} | "
        f"{'met' if result['opened'] == total else '**not met**'} |",
        f"| Connect → 200 headers, all {total} opened at once | {pct(connect)} | reported | |",
        f"| Connect → first event | {pct(first)} | reported | |",
    ]
    base = {}
    rows = []
    for name in ("catalog", "run page"):
        i50, i95, n_idle, i_max = _summary(result["idle"], name)
        r50, r95, n_runs, r_max = _summary(result["runs_only"], name)
        l50, l95, n_loaded, l_max = _summary(result["loaded"], name)
        s50, s95, n_steady, s_max = _summary(result["steady"], name)
        base[name] = i95
        met = l95 <= PAGE_RATIO * i95 and l50 <= PAGE_RATIO * i50
        rows.append(
            f"| {name} | {i50:.1f} / {i95:.1f} / {i_max:.0f} ({n_idle}) "
            f"| {r50:.1f} / {r95:.1f} / {r_max:.0f} ({n_runs}) "
            f"| {l50:.1f} / {l95:.1f} / {l_max:.0f} ({n_loaded}) | {s50:.1f} / {s95:.1f} / {s_max:.0f} ({n_steady}) "
            f"| {l50 / i50:.2f}x / {l95 / i95:.2f}x | {l50 / r50:.2f}x / {l95 / r95:.2f}x "
            f"| ≤ {PAGE_RATIO}x | {'met' if met else '**not met**'} |"
        )
    cpu = result["cpu"]

    def cpu_text(phase: str) -> str:
        web, worker, seconds = cpu[phase]
        return f"web {web:.1f}, worker {worker:.1f} CPU-s in {seconds:.0f} s"

    parts = [
        f"#### {total} clients following {sizes['runs']} runs ({sizes['per_run']} each) on SQLite",
        "",
        *lines,
        "",
        "Pages, one client back to back, p50 / p95 / max in ms (requests):",
        "",
        "| Page | unloaded | runs streaming, nobody following | runs + clients following (whole phase) "
        "| runs + clients, all streams open | loaded ÷ unloaded p50 / p95 | loaded ÷ runs only p50 / p95 "
        "| Target | Met |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Runs followed: {', '.join(f'{v} {k}' for k, v in sorted(run_states.items()))}; each streamed "
        f"{min(outputs, default=0)}-{max(outputs, default=0)} `output` events to each of its clients, who stayed "
        f"{min(lasted, default=0):.0f}-{max(lasted, default=0):.0f} s until `end`. The unfollowed runs: "
        + ", ".join(
            f"{v} {k}"
            for k, v in sorted(
                {
                    s: sum(1 for r in result["alone_checked"].values() if r["status"] == s)
                    for s in {r["status"] for r in result["alone_checked"].values()}
                }.items()
            )
        )
        + ".",
        f"Server CPU (gunicorn + its uvicorn workers = web; the qcluster = worker): unloaded {cpu_text('idle')}; "
        f"runs only {cpu_text('runs_only')}; runs + clients {cpu_text('loaded')}. Load average at the end of the "
        "loaded phase: " + ", ".join(f"{v:.2f}" for v in result["load"]) + ".",
        f"The platform was up and warm {result['up_seconds']:.0f} s after it started; its log has "
        f"{result['server_errors']} tracebacks.",
    ]
    if errors or bodies:
        parts += ["", "Client errors seen: " + "; ".join(errors + bodies)]
    broken = [c for c in clients if not complete(c)]
    if broken:
        shown = {k: v for k, v in broken[0].items() if k != "body"}
        its_run = json.dumps(checked.get(shown["run"]))
        parts += ["", f"First of {len(broken)} incomplete streams: `{json.dumps(shown)}`; its run: `{its_run}`."]
    return "\n".join(parts)


def main(quick: bool) -> str:
    sizes = sizes_for(quick)
    total = sizes["runs"] * sizes["per_run"]
    intro = [
        f"## Event streams: {total} clients following runs (issue 24)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. `scripts/entrypoint.sh all` (what `make "
        "run` runs: prepare, then gunicorn with 2 uvicorn workers and the qcluster, default settings) on SQLite in "
        "a temp dir; the stand-in provider (tests/support, its own process) streams every model call word by word "
        f"({sizes['words']} words and a well-formed tail, {sizes['chunk_delay']} s apart), so each run is real: "
        f"queued, run by the worker, its text stored as RunText rows. {sizes['runs']} runs at once, each followed "
        f"by {sizes['per_run']} clients holding its owner's API token ({sizes['runs']} users, so no per-user cap "
        f"is reached): {total} `GET /api/v1/runs/{{id}}/events` opened at once from one asyncio process on raw "
        "sockets, each read until `end` and checked against the database (`bench/events.py`). Pages (the catalog "
        "and a finished run's page, logged in) are timed from another process, one client back to back, in three "
        "phases of the same run: idle (unloaded), the runs streaming with nobody following, and the runs "
        "streaming with the clients following. Target: every stream 200 with all its events; pages within 2x "
        "their unloaded p50 and p95.",
    ]
    try:
        body = report(measure(quick))
    except Exception as exc:
        body = f"The suite failed: {type(exc).__name__}: {str(exc)[:500]}"
    return "\n".join([*intro, "", body])


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "fake":
        serve_fake(int(sys.argv[2]), float(sys.argv[3]))
    elif command == "clients":
        run_clients(sys.argv[2])
    elif command in ("seed", "start", "check"):
        import django

        django.setup()
        if command == "seed":
            print(json.dumps(seed(int(sys.argv[2]), sys.argv[3])))
        elif command == "start":
            print(json.dumps(start(json.loads(sys.stdin.read()), sys.argv[2])))
        else:
            print(json.dumps(check(json.loads(sys.stdin.read()))))
    else:
        print(main(quick="--quick" in sys.argv))
