"""Supply chain: every dependency is pinned to one version with hashes, installed with --require-hashes,
and LiteLLM is never one of the releases that were compromised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
COMPROMISED_LITELLM = {"1.82.7", "1.82.8"}


def requirements(name: str) -> dict[str, tuple[str, list[str]]]:
    """package -> (pinned version, hashes), read from a pip-compile lock file."""
    found: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / "requirements" / name).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;]+)", line)
        assert match, f"{name}: '{line[:60]}' is not pinned with =="
        found[match[1].lower()] = (match[2], re.findall(r"--hash=sha256:[0-9a-f]{64}", line))
    return found


@pytest.mark.parametrize("lock_file", ["base.txt", "dev.txt"])
def test_every_locked_dependency_is_pinned_with_hashes(lock_file):
    locked = requirements(lock_file)
    assert locked and [name for name, (_, hashes) in locked.items() if not hashes] == []


def test_installs_require_the_hashes_and_litellm_is_never_a_compromised_release():
    assert "--require-hashes" in (ROOT / "Makefile").read_text()
    assert "--require-hashes" in (ROOT / "Dockerfile").read_text()
    version, _ = requirements("base.txt")["litellm"]
    assert version not in COMPROMISED_LITELLM


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_installed_distribution_is_pinned_with_its_hashes_in_the_lock():
    # The install is `pip install --no-deps` of the lock: a dependency that reached the venv without a pin of
    # its own (an extra the lock left out, a transitive pin deleted) would come from whatever the index serves.
    from importlib.metadata import distributions

    locked = {normalized(name): pin for lock in ("base.txt", "dev.txt") for name, pin in requirements(lock).items()}
    installed = {normalized(dist.metadata["Name"]): dist.version for dist in distributions()}
    assert len(installed) > 50, "the test runs inside the project's venv"
    unpinned = sorted(name for name in installed if name not in locked)
    assert unpinned == [], f"installed but not in requirements/*.txt: {unpinned}"
    other_version = {n: (v, locked[n][0]) for n, v in installed.items() if v != locked[n][0]}
    assert other_version == {}, f"installed version differs from the lock: {other_version}"


def test_installs_take_only_the_lock_and_the_lock_names_no_machine_paths():
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (ROOT / "Dockerfile").read_text()
    for text in (makefile, dockerfile):
        assert "--no-deps" in text and "pip check" in text
    for lock in ("base.txt", "dev.txt"):
        options = [line for line in (ROOT / "requirements" / lock).read_text().splitlines() if line.startswith("-")]
        assert options == [], f"{lock} carries pip options of the machine it was compiled on: {options}"
