"""Attacks on the code sandbox (issue 25, item 7): each is the code a script or a model could run, and each
must be contained and reported. docs/security.md lists them."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from runs import sandbox

from .sandbox_support import needs_sandbox, processes_with, run_code

__all__ = ["needs_sandbox"]
pytestmark = pytest.mark.usefixtures("needs_sandbox")


def test_code_cannot_connect_to_a_listener_on_the_hosts_loopback(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    code = f"""
import socket
for host in ("127.0.0.1", "10.0.2.2", "1.1.1.1"):
    try:
        socket.create_connection((host, {port}), timeout=2)
        print("CONNECTED", host)
    except OSError as exc:
        print("refused", host, type(exc).__name__)
"""
    result = run_code(tmp_path, code)
    assert "CONNECTED" not in result.stdout and result.stdout.count("refused") == 3, result
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing ever reached the listener
    listener.close()


def test_code_cannot_read_the_database_the_env_file_the_project_or_another_runs_files(tmp_path):
    other_run = Path(settings.MEDIA_ROOT) / "runs" / str(uuid.uuid4())
    other_run.mkdir(parents=True)
    (other_run / "notes.md").write_text("OTHER-RUNS-SECRET")
    database = Path(settings.DATA_DIR) / "db.sqlite3"
    targets = [
        database,
        Path(settings.BASE_DIR) / ".env",
        Path(settings.BASE_DIR) / "manage.py",
        other_run / "notes.md",
        Path(settings.DATA_DIR),
        Path("/etc/shadow"),
        Path("/root/.ssh"),
        Path("/home"),
    ]
    assert (Path(settings.BASE_DIR) / "manage.py").exists() and (other_run / "notes.md").exists()
    code = "import os\n" + "".join(
        f"try:\n    print('READ', {str(t)!r}, open({str(t)!r}).read()[:50] if os.path.isfile({str(t)!r}) else "
        f"os.listdir({str(t)!r}))\nexcept OSError as exc:\n    print('denied', {str(t)!r}, type(exc).__name__)\n"
        for t in targets
    )
    result = run_code(tmp_path, code)
    assert "OTHER-RUNS-SECRET" not in result.stdout and "READ" not in result.stdout, result.stdout
    assert result.stdout.count("denied") == len(targets)


def test_code_sees_no_variable_of_the_worker_not_even_in_proc_1_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("AWP_SANDBOX_CANARY", "canary-7f3a9")
    code = """
import os, glob
print(dict(os.environ))
for path in ["/proc/1/environ", "/proc/self/environ", *glob.glob("/proc/[0-9]*/environ")]:
    try:
        print(path, open(path, "rb").read())
    except OSError as exc:
        print(path, "denied", type(exc).__name__)
"""
    result = run_code(tmp_path, code)
    assert result.ok, result
    assert "canary-7f3a9" not in result.stdout
    assert "DJANGO_SECRET_KEY" not in result.stdout and "FIELD_ENCRYPTION_KEYS" not in result.stdout
    assert "/proc/1/environ" in result.stdout


def test_code_runs_as_an_unprivileged_user_outside_the_container_too(tmp_path):
    result = run_code(tmp_path, "import os; open('/outputs/who', 'w').write(str(os.getuid())); print(os.getuid())")
    assert result.ok, result
    owner = (tmp_path / "outputs" / "who").stat().st_uid
    assert owner != 0 or os.geteuid() != 0  # as root, the file belongs to nobody, not root
    if os.geteuid() == 0:
        assert owner == sandbox.SANDBOX_UID


def test_a_fork_bomb_is_held_by_the_process_limit_and_killed_whole_at_its_wall_time(tmp_path):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = f"""# {marker}
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
    started = time.monotonic()
    result = run_code(tmp_path, code, sandbox.Limits(wall_seconds=3, processes=32))
    assert result.stopped == "time" and time.monotonic() - started < 15
    assert any("wall-time" in note for note in result.notes)
    time.sleep(0.5)
    assert processes_with(marker) == []


def test_filling_the_disk_is_stopped_at_the_quota(tmp_path):
    code = """
import os
n = 0
while True:
    with open(f"/outputs/fill-{n}", "wb") as f:
        f.write(os.urandom(1024 * 1024))
    n += 1
"""
    limits = sandbox.Limits(wall_seconds=60, disk_bytes=16 * 1024**2)
    result = run_code(tmp_path, code, limits)
    written = sum(p.stat().st_size for p in (tmp_path / "outputs").iterdir())
    assert result.stopped == "disk" and any("disk quota" in note for note in result.notes), result
    assert written < 16 * 1024**2 + 64 * 1024**2  # stopped within a moment of the quota


def test_one_file_past_the_file_size_limit_is_refused_by_the_kernel(tmp_path):
    code = "open('/outputs/big', 'wb').write(b'x' * (3 * 1024 * 1024))"
    result = run_code(tmp_path, code, sandbox.Limits(wall_seconds=30, file_bytes=1024 * 1024))
    assert not result.ok and (tmp_path / "outputs" / "big").stat().st_size <= 1024 * 1024
    assert any("larger than 1 MiB" in note for note in result.notes) or "File too large" in result.stderr


def test_code_cannot_write_outside_outputs_and_scratch(tmp_path):
    targets = ["/skills/s/SKILL.md", "/inputs/data.csv", "/usr/evil", "/evil", f"{sandbox.VENV}/evil", "/etc/evil"]
    code = "".join(
        f"try:\n    open({t!r}, 'a').write('pwned')\n    print('WROTE', {t!r})\n"
        f"except OSError as exc:\n    print('refused', {t!r}, type(exc).__name__)\n"
        for t in targets
    )
    code += "open('/outputs/ok.txt', 'w').write('fine'); open('/work/scratch.txt', 'w').write('fine')\n"
    result = run_code(tmp_path, code)
    assert "WROTE" not in result.stdout and result.stdout.count("refused") == len(targets), result.stdout
    assert (tmp_path / "skill" / "SKILL.md").read_text() == "# skill\n"
    assert (tmp_path / "inputs" / "data.csv").read_text() == "a,b\n1,2\n"
    assert (tmp_path / "outputs" / "ok.txt").read_text() == "fine" and (tmp_path / "work" / "scratch.txt").exists()


def test_a_detached_process_does_not_outlive_its_execution(tmp_path):
    marker = f"daemon-{uuid.uuid4().hex}"
    code = f"""# {marker}
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            with open("/outputs/alive", "a") as f:
                f.write("x")
            time.sleep(0.05)
print("parent leaves")
"""
    result = run_code(tmp_path, code)
    assert result.exit_code == 0
    time.sleep(0.3)
    alive = tmp_path / "outputs" / "alive"
    size = alive.stat().st_size if alive.exists() else 0
    time.sleep(0.5)
    assert (alive.stat().st_size if alive.exists() else 0) == size
    assert processes_with(marker) == []


def test_a_cancel_kills_running_code_at_once(tmp_path):
    asked = time.monotonic() + 0.5
    started = time.monotonic()
    result = run_code(
        tmp_path, "import time; time.sleep(60)", should_stop=lambda: "cancel" if time.monotonic() > asked else ""
    )
    assert result.stopped == "cancel" and time.monotonic() - started < 5
    assert "killed: the run was cancelled" in result.notes


def test_memory_and_cpu_are_limited(tmp_path):
    memory = run_code(
        tmp_path / "m", "b = bytearray(3 * 1024**3); print('ALLOCATED')", sandbox.Limits(memory_bytes=512 * 1024**2)
    )
    assert "ALLOCATED" not in memory.stdout and not memory.ok
    cpu = run_code(tmp_path / "c", "while True: pass", sandbox.Limits(cpu_seconds=1, wall_seconds=20))
    assert not cpu.ok and cpu.stopped == "" and any("CPU" in note for note in cpu.notes), cpu
