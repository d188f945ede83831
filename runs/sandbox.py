"""The code sandbox: run one command in a bubblewrap (`bwrap`) container with no network, an empty
environment, the skill and the input files read-only, a writable scratch and outputs folder, and limits on
CPU time, memory, processes, file sizes, open files, disk use and wall time (docs/security.md, "Code sandbox").

Why bubblewrap: it is a small setuid-free Debian package that builds the container from Linux namespaces
(mount, PID, network, IPC, UTS, user), the same mechanism Flatpak relies on; nothing outside the mounts listed
here exists inside. When the worker runs as root (a development container), bwrap is started privileged and
the command drops to an unprivileged uid (`setpriv`) inside, so even an escape is not root; otherwise bwrap
makes a user namespace as the worker's own (non-root) user. Limits are rlimits set by `prlimit` right before
the command, a disk quota watched from outside, and a wall-clock kill of the whole PID namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings

VENV = "/opt/venv"  # where the curated venv appears inside (the project's own folder never does)
PYTHON = f"{VENV}/bin/python"
SANDBOX_UID = 65534  # nobody: when the worker is root, the command runs as this uid outside the container too
OUTPUT_CHARS = 8000  # of stdout and of stderr, handed to the model (the rest is cut, and the cut is said)
TRACE_CHARS = 2000  # of each, recorded in trace.json
POLL_SECONDS = 0.05
ENVIRONMENT = {  # the whole environment of the command: nothing of the worker's (no keys, no DATABASE_URL)
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/work",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's own tmpfs
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp",  # noqa: S108
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_bytes: int = 2 * 1024**3  # address space; numpy and pandas reserve more than they use
    wall_seconds: float = 120
    processes: int = 64  # threads count too
    file_bytes: int = 64 * 1024**2  # the largest file a command may write (stdout included)
    open_files: int = 256
    disk_bytes: int = 256 * 1024**2  # scratch + outputs together, watched from outside
    tmp_bytes: int = 64 * 1024**2  # /tmp is a tmpfs of this size


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass
class Result:
    exit_code: int
    duration_ms: int
    stdout: str
    stderr: str
    stopped: str = ""  # why it was killed: "", "time", "disk", or what should_stop said ("cancel", "deadline")
    stdout_chars: int = 0
    stderr_chars: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.stopped


class SandboxUnavailable(Exception):
    pass


def python_path() -> Path:
    return Path(settings.SANDBOX_PYTHON)


def _python_mounts() -> list[Mount]:
    """The sandbox venv (at /opt/venv) and the Python it was made from, read-only (the venv's interpreter is a
    symlink to the base one, so that appears at its own path)."""
    python = python_path()
    venv = python.parent.parent
    mounts = [Mount(venv, VENV)]
    cfg = venv / "pyvenv.cfg"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                prefix = Path(value.strip()).parent
                if not str(prefix).startswith("/usr/"):
                    mounts.append(Mount(prefix, str(prefix)))
    return mounts


def _system_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    for path in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", path, path]  # never all of /etc
    return args


def _as_root() -> bool:
    return os.geteuid() == 0


def command_line(argv: list[str], mounts: list[Mount], limits: Limits, cwd: str = "/work") -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    args += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox", "--clearenv"]
    if not _as_root():
        args += ["--unshare-user"]  # the worker's own uid inside; no capability outside
    args += _system_args()
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]  # noqa: S108
    for mount in [*_python_mounts(), *mounts]:
        for parent in reversed(Path(mount.target).parents[:-1]):  # traversable, whatever the host's modes
            if not str(parent).startswith("/usr"):
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
    for name, value in ENVIRONMENT.items():
        args += ["--setenv", name, value]
    args += ["--chdir", cwd, "--"]
    if _as_root():  # drop to nobody, with no capability and no way to gain one
        args += [
            "/usr/bin/setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
    args += [
        "/usr/bin/prlimit",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",  # SIGXCPU first (said in the notes), then KILL
        f"--as={limits.memory_bytes}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
        *argv,
    ]
    return args


def owned_by_sandbox(path: Path) -> None:
    """A folder the command may write: when the worker is root, it belongs to the sandbox's uid."""
    path.mkdir(parents=True, exist_ok=True)
    if _as_root():
        os.chown(path, SANDBOX_UID, SANDBOX_UID)


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why code cannot run here (said by Validate and on the operator page), or None when it can."""
    if not settings.SANDBOX_ENABLED:
        return "The code sandbox is switched off on this server (SANDBOX_ENABLED=false)."
    if shutil.which("bwrap") is None:
        return "The code sandbox needs bubblewrap (the Debian package 'bubblewrap'), which is not installed."
    if not python_path().exists():
        return f"The sandbox's Python environment is missing ({python_path()}): run `make install`."
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "work"
        owned_by_sandbox(work)
        try:
            probe = subprocess.run(
                command_line([PYTHON, "-c", "print('ok')"], [Mount(work, "/work", True)], Limits()),
                capture_output=True,
                env={},
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start a sandbox: {exc}."
    if probe.returncode != 0 or probe.stdout.strip() != b"ok":
        detail = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return (
            "bubblewrap cannot create a sandbox here (user namespaces are off, or the container forbids them): "
            f"{detail[0][:200]}. docs/operations.md, 'The code sandbox in Docker', says how to enable it."
        )
    return None


DISK_CHECK_SECONDS = 0.05


def _disk_use(folders: list[Path]) -> int:
    total = 0
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(OSError):  # gone meanwhile
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _read_cut(path: Path, limit: int) -> tuple[str, int]:
    """The first `limit` characters of a captured stream and its whole length in bytes."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        text = handle.read(limit * 4).decode("utf-8", errors="replace")
    return text[:limit], size


def run(
    argv: list[str],
    *,
    mounts: list[Mount],
    limits: Limits,
    writable: list[Path],
    should_stop: Callable[[], str] = lambda: "",
) -> Result:
    """Run argv in the sandbox and wait for it, killing it at its wall time, when `should_stop` names a
    reason (a cancel, the run's deadline) or when the writable folders pass the disk quota."""
    reason = unavailable()
    if reason:
        raise SandboxUnavailable(reason)
    started = time.monotonic()
    stopped = ""
    with tempfile.TemporaryDirectory(prefix="awp-streams-") as streams:
        out_path, err_path = Path(streams) / "stdout", Path(streams) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                command_line(argv, mounts, limits),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={},  # bwrap itself, and so the sandbox's PID 1, carries no variable of the worker
                start_new_session=True,
            )
            next_disk_check = 0.0
            while process.poll() is None:
                now = time.monotonic()
                if why := should_stop():  # first: the run's deadline is also where a clamped wall time ends
                    stopped = why
                elif now - started > limits.wall_seconds:
                    stopped = "time"
                elif now >= next_disk_check:
                    # Often: code writing as fast as it can passes the quota by what it writes between checks.
                    next_disk_check = now + DISK_CHECK_SECONDS
                    if _disk_use(writable) > limits.disk_bytes:
                        stopped = "disk"
                if stopped:
                    _kill(process)
                    break
                time.sleep(POLL_SECONDS)
            process.wait()
        stdout, stdout_bytes = _read_cut(out_path, OUTPUT_CHARS)
        stderr, stderr_bytes = _read_cut(err_path, OUTPUT_CHARS)
    code = process.returncode
    result = Result(
        exit_code=code,
        duration_ms=int((time.monotonic() - started) * 1000),
        stdout=stdout,
        stderr=stderr,
        stopped=stopped,
        stdout_chars=stdout_bytes,
        stderr_chars=stderr_bytes,
    )
    result.notes = _notes(result, limits)
    return result


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill bwrap's whole session: its PID 1 dies with it, and the kernel then kills every process of the
    container's PID namespace, however it forked or detached."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _notes(result: Result, limits: Limits) -> list[str]:
    notes = {
        "time": f"killed: it ran longer than its {limits.wall_seconds:g}-second wall-time limit",
        "disk": f"killed: its files passed the {limits.disk_bytes // 1024**2} MiB disk quota",
        "cancel": "killed: the run was cancelled",
        "deadline": "killed: the run reached its time limit",
    }
    out = [notes.get(result.stopped, f"killed: {result.stopped}")] if result.stopped else []
    if not result.stopped and result.exit_code > 128:  # bwrap exits 128 + N when its command died of signal N
        sig = result.exit_code - 128
        what: str = {
            int(signal.SIGXCPU): f"it used more than {limits.cpu_seconds} s of CPU time",
            int(signal.SIGXFSZ): f"it wrote a file larger than {limits.file_bytes // 1024**2} MiB",
            int(signal.SIGKILL): "killed (out of memory, or the CPU limit)",
        }.get(sig, f"signal {sig}")
        out.append(f"stopped by signal: {what}")
    if result.stdout_chars > OUTPUT_CHARS:
        out.append(f"stdout cut to its first {OUTPUT_CHARS} characters of {result.stdout_chars} bytes")
    if result.stderr_chars > OUTPUT_CHARS:
        out.append(f"stderr cut to its first {OUTPUT_CHARS} characters of {result.stderr_chars} bytes")
    return out
