"""Real processes for end-to-end tests: a qcluster against the test database, and waiting helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(settings.BASE_DIR)


def database_url() -> str:
    """The URL of the database this test process uses (the test database), for a subprocess."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "DATA_DIR": str(settings.DATA_DIR),
        "ENV_FILE": os.devnull,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "Q_POLL": "0.1",
        "Q_WORKERS": "1",
    }
    env.update(extra)
    return env


def start_qcluster(log_path: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=subprocess_env(**extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(5)


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def race(function: str, calls: list[dict[str, Any]], go_file: Path, timeout: float = 120) -> list[Any]:
    """Call `function` (a dotted path) once per keyword set, each in its own OS process, all released at one
    moment (when `go_file` appears); returns their JSON results in order. See tests/support/racer.py."""
    import json

    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.racer", str(go_file), function, json.dumps(kwargs)],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for kwargs in calls
    ]

    def ready() -> bool:
        failed = [p for p in processes if p.poll() not in (None, 0)]
        if failed:
            raise AssertionError(f"a racer failed: {failed[0].communicate()[1].decode()[-2000:]}")
        return len(list(go_file.parent.glob(f"{go_file.name}.ready.*"))) == len(processes)

    wait_for(ready, timeout, interval=0.05, message="every racer to be set up and connected")
    go_file.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise AssertionError(f"a racer failed: {err.decode()[-2000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_web(log_path: Path, open_files: int | None = None, **extra_env: str) -> tuple[subprocess.Popen[bytes], str]:
    """The web server as deployed (`scripts/entrypoint.sh serve`: gunicorn with uvicorn workers) on a free
    port, against the test database; returns the process and its base URL once it answers. `open_files` sets
    the hard open-files limit the entrypoint lifts its limit to (what a small machine or container allows)."""
    import httpx

    def limit_open_files() -> None:
        import resource

        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    port = free_port()
    log = log_path.open("wb")
    env = subprocess_env(HOST="127.0.0.1", PORT=str(port), WEB_WORKERS="1", PYTHON=sys.executable, **extra_env)
    process = subprocess.Popen(
        ["bash", "scripts/entrypoint.sh", "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=limit_open_files,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the web server stopped: {log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{base_url}/api/v1/openapi.json", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(up, 60, interval=0.2, message="the web server to answer")
    return process, base_url
