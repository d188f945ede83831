"""Prices per token: an operator's ModelPrice first, then LiteLLM's bundled map; None means unpriced."""

from __future__ import annotations

from decimal import Decimal

from . import llm
from .models import ModelPrice
from .resolution import Target

MILLION = Decimal(1_000_000)


def price_of(target: Target) -> llm.Price | None:
    if target.is_offline:
        return None
    own = ModelPrice.objects.filter(model=target.model).first()
    if own is not None:
        return llm.Price(own.input_per_million / MILLION, own.output_per_million / MILLION)
    return llm.map_price(target)
