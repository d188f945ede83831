"""`Idempotency-Key` on run creation: the first request with a key starts the run; a retry with the same key
and body answers that run (201 again, same body); the same key with another body is 422; a retry while the
first is still starting is 409. Keys are per user and kept with the run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction

from runs.models import Run

from .errors import ApiError
from .models import IdempotentRequest

MAX_KEY = 200


def once(user: Any, key: str, body: dict[str, Any], start: Callable[[], Run]) -> Run:
    if len(key) > MAX_KEY or not key.isprintable():
        raise ApiError(422, "invalid_request", f"Idempotency-Key must be 1 to {MAX_KEY} printable characters.")
    body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    try:
        with transaction.atomic():
            claim = IdempotentRequest.objects.create(user=user, key=key, body_hash=body_hash)
    except IntegrityError:
        return _earlier(user, key, body_hash)
    try:
        run = start()
    except BaseException:
        claim.delete()  # refused or failed: the key may be used again
        raise
    IdempotentRequest.objects.filter(pk=claim.pk).update(run=run)
    return run


def _earlier(user: Any, key: str, body_hash: str) -> Run:
    earlier = IdempotentRequest.objects.select_related("run").filter(user=user, key=key).first()
    if earlier is None:  # the first request was refused meanwhile and gave the key back
        raise ApiError(409, "idempotency_conflict", "A request with this Idempotency-Key just ended; send it again.")
    if earlier.body_hash != body_hash:
        raise ApiError(
            422, "idempotency_key_reused", "This Idempotency-Key was used for another request: use a new key."
        )
    if earlier.run is None:
        raise ApiError(
            409, "idempotency_conflict", "A request with this Idempotency-Key is still being handled; retry soon."
        )
    return earlier.run
