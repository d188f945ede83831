"""Moved to runs.money (one place for money); these names stay for code that still imports them."""

from __future__ import annotations

from .money import CENT_FRACTION, estimate, priced, tokens, upper_estimate, upper_tokens, worst_next_call

__all__ = ["CENT_FRACTION", "estimate", "priced", "tokens", "upper_estimate", "upper_tokens", "worst_next_call"]
