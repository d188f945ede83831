from decimal import Decimal

import pytest

from runs.money import format_usd


@pytest.mark.parametrize(
    ("value", "kwargs", "shown"),
    [
        (Decimal("0.0052"), {}, "$0.0052"),
        (Decimal("0.00005"), {}, "< $0.0001"),
        (Decimal("0.000000"), {}, "$0"),
        (Decimal("12.5"), {}, "$12.50"),
        (None, {}, "unpriced"),
        (Decimal("0"), {"unpriced": True}, "unpriced"),
        (Decimal("0.0031"), {"unpriced": True}, "$0.0031"),
        (Decimal("0"), {"offline": True}, "free"),
        (Decimal("0.12345"), {}, "$0.1235"),
    ],
)
def test_it_formats_money_for_people(value, kwargs, shown):
    assert format_usd(value, **kwargs) == shown
