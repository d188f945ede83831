"""Money: the one formatter for dollars, used by pages, the CLI and the trace.

(Pricing, estimates, reservations and budgets gather here too: docs/runs.md.)
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SMALLEST = Decimal("0.0001")


def format_usd(value: Decimal | float | int | None, *, unpriced: bool = False, offline: bool = False) -> str:
    """ "$0.0052", "< $0.0001", "$12.50", "unpriced", "free (offline)" — never "$0.000000"."""
    if offline:
        return "free (offline)"
    if value is None or (unpriced and not value):
        return "unpriced"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    if abs(amount) < SMALLEST:
        return "< $0.0001"
    if abs(amount) >= 1:
        return f"${amount.quantize(Decimal('0.01'), ROUND_HALF_UP)}"
    # Four significant decimals are enough to tell small runs apart without a wall of zeros.
    return f"${amount.quantize(SMALLEST, ROUND_HALF_UP).normalize():f}"
