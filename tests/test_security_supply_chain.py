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
