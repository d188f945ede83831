"""Helpers for tests of the code sandbox: a fixture that needs it, and code run in it with a run's mounts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runs import sandbox


@pytest.fixture
def needs_sandbox():
    """The sandbox must work in CI (.ci/run installs bubblewrap; make install builds .venv-sandbox); a developer
    machine without it skips these tests, saying why."""
    sandbox.unavailable.cache_clear()
    reason = sandbox.unavailable()
    if reason and os.environ.get("CI"):
        pytest.fail(f"the code sandbox must work in CI: {reason}")
    if reason:
        pytest.skip(reason)


def folders(tmp_path: Path) -> dict[str, Path]:
    made = {name: tmp_path / name for name in ("work", "outputs", "skill", "inputs")}
    for name in ("work", "outputs"):
        sandbox.owned_by_sandbox(made[name])
    made["skill"].mkdir()
    (made["skill"] / "SKILL.md").write_text("# skill\n")
    made["inputs"].mkdir()
    (made["inputs"] / "data.csv").write_text("a,b\n1,2\n")
    return made


def run_code(tmp_path: Path, code: str, limits: sandbox.Limits | None = None, **kwargs) -> sandbox.Result:
    made = folders(tmp_path)
    mounts = [
        sandbox.Mount(made["skill"], "/skills/s"),
        sandbox.Mount(made["inputs"] / "data.csv", "/inputs/data.csv"),
        sandbox.Mount(made["work"], "/work", writable=True),
        sandbox.Mount(made["outputs"], "/outputs", writable=True),
    ]
    return sandbox.run(
        [sandbox.PYTHON, "-c", code],
        mounts=mounts,
        limits=limits or sandbox.Limits(wall_seconds=30),
        writable=[made["work"], made["outputs"]],
        **kwargs,
    )


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line holds marker (the code of a `python -c`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
