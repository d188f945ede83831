"""Moved to runs.money (one place for money); this name stays for code that still imports it."""

from __future__ import annotations

from runs.money import MILLION, price_of

__all__ = ["MILLION", "price_of"]
