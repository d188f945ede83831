"""Per-connection rate limits (requests and tokens per minute), counted in the database so every worker
process shares them."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import RateWindow


def reserve(connection_id: int, *, tokens: int, rpm: int | None, tpm: int | None) -> float:
    """Count one request of about `tokens` in this minute. Returns 0.0 when it may go now, else the seconds
    to wait for the next minute (and nothing is counted)."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    with transaction.atomic():
        window, created = RateWindow.objects.select_for_update().get_or_create(
            connection_id=connection_id, minute=minute
        )
        if created:
            RateWindow.objects.filter(connection_id=connection_id, minute__lt=minute - timedelta(hours=1)).delete()
        over_requests = rpm is not None and window.requests + 1 > rpm
        # A single call larger than the whole budget may still go in an empty minute, or it never would.
        over_tokens = tpm is not None and window.tokens > 0 and window.tokens + tokens > tpm
        if over_requests or over_tokens:
            return max(0.05, 60 - now.second - now.microsecond / 1_000_000)
        RateWindow.objects.filter(pk=window.pk).update(requests=F("requests") + 1, tokens=F("tokens") + tokens)
    return 0.0
