"""Moved to runs.money (one place for money): budgets are checked and held by `money.reserve`."""

from __future__ import annotations

from .money import reserve, settle

# The old name: a budget check now also reserves the estimate until the run settles.
refusal = reserve

__all__ = ["refusal", "reserve", "settle"]
