"""The entrypoint script `make run` and the Docker images use: first start, a real run, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings

from .support import web
from .support.processes import wait_for

pytestmark = pytest.mark.e2e
SCRIPT = settings.BASE_DIR / "scripts" / "entrypoint.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script_env(tmp_path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        PYTHON=sys.executable,
        DATA_DIR=str(tmp_path / "data"),
        ENV_FILE=str(tmp_path / ".env"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'db.sqlite3'}",
        PORT=str(port),
        WEB_WORKERS="1",
        Q_WORKERS="1",
        Q_POLL="0.1",
    )
    env.pop("DJANGO_ADMIN_PASSWORD", None)
    return env


def up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/login/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("stop_with", ["ctrl-c to the group", "sigterm to the script"])
def test_make_run_starts_web_and_worker_which_run_a_workflow_and_a_stop_signal_stops_both(tmp_path, stop_with):
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "all"],
            env=script_env(tmp_path, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: up(port) or process.poll() is not None, timeout=90, message="the web server")
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        env_file = (tmp_path / ".env").read_text()
        assert re.search(r"^DJANGO_SECRET_KEY=\S{40,}$", env_file, re.M)
        assert re.search(r"^FIELD_ENCRYPTION_KEYS=\S{44}$", env_file, re.M)
        assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
        password = re.search(r"Created the admin account 'admin' with the password: (\S+)", text)
        assert password, text
        client = web.login(f"http://127.0.0.1:{port}", "admin", password.group(1))
        run_path = web.submit(
            client,
            "learn-agentic-ai",
            {"topic": "Agents", "level": "beginner", "session_minutes": "20", "mode": "test"},
        )
        wait_for(lambda: "Succeeded" in client.get(run_path).text, timeout=40, message="the run to succeed")
        assert client.get(f"{run_path}artifacts/notes.md").status_code == 200
    finally:
        if stop_with == "ctrl-c to the group":
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
        else:
            os.kill(process.pid, signal.SIGTERM)  # what `docker stop` or a supervisor sends
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(
                f"{stop_with} did not stop the platform within 30 s:\n" + log.read_text()[-3000:]
            ) from None
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes still running: {leftover}"
    assert not up(port)


def test_a_second_start_keeps_the_generated_secrets_and_the_admin(tmp_path):
    env = script_env(tmp_path, free_port())
    first = subprocess.run(["bash", str(SCRIPT), "prepare"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    secrets_before = (tmp_path / ".env").read_text()
    second = subprocess.run(["bash", str(SCRIPT), "prepare"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / ".env").read_text() == secrets_before
    assert "An admin account exists" in second.stdout
    assert "password:" not in second.stdout


def test_an_admin_password_from_the_environment_is_used_and_not_printed(tmp_path):
    env = {**script_env(tmp_path, free_port()), "DJANGO_ADMIN_PASSWORD": "a-long-password-from-env-1234"}
    done = subprocess.run(["bash", str(SCRIPT), "prepare"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "a-long-password-from-env-1234" not in done.stdout + done.stderr
    assert "password from DJANGO_ADMIN_PASSWORD" in done.stdout


def test_make_run_on_a_busy_port_fails_at_once_with_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            ["bash", str(SCRIPT), "all"], env=script_env(tmp_path, port), capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "PORT=8001 make run" in result.stderr
    assert "is up" not in result.stdout
    assert not (tmp_path / ".env").exists()  # it stopped before preparing anything
