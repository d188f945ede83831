"""The docs stay true: every test the security tables name exists, and the README starts with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def test_every_test_named_in_the_security_tables_exists():
    doc = (ROOT / "docs" / "security.md").read_text()
    named = set(re.findall(r"`?(test_[a-z0-9_]+)\.py::(test_[a-z0-9_]+)", doc))
    named |= {(None, n) for n in re.findall(r"`(test_[a-z0-9_]+)`", doc)}
    sources = {p.stem: p.read_text() for p in (ROOT / "tests").glob("test_*.py")}
    everything = "\n".join(sources.values())
    missing = [f for module, f in named if f"def {f}(" not in (sources.get(module, "") if module else everything)]
    assert len(named) > 30 and missing == []


def test_the_readme_starts_with_make_run_and_make_test():
    head = (ROOT / "README.md").read_text().split("\n\n", 2)[1]
    assert "make run" in head and "make test" in head
