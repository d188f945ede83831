"""Moved to runs.money (one place for money); this name stays for code that still imports it."""

from __future__ import annotations

from .money import for_version

__all__ = ["for_version"]
