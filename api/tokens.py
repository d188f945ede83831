"""Personal access tokens: making, revoking, and checking one on a request (last use and throttling)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.http import Http404
from django.utils import timezone

from settings_app import audit
from settings_app.models import AuditAction

from .models import AccessToken, Scope

PREFIX = "awp_"
WINDOW = timedelta(minutes=1)


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"Too many requests with this token: wait {retry_after} s.")


@dataclass(frozen=True)
class NewToken:
    token: AccessToken
    secret: str  # shown to its owner once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(*, user: Any, name: str, scope: str, ip: str | None = None) -> NewToken:
    if scope not in Scope.values:
        raise ValueError(f"Unknown scope '{scope}': use read or run.")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = AccessToken.objects.create(
        user=user, name=name.strip()[:80], scope=scope, prefix=secret[: len(PREFIX) + 6], digest=digest(secret)
    )
    audit.record(AuditAction.CREATED, token, actor=user, ip=ip, kind="api token", scope=scope)
    return NewToken(token, secret)


def revoke_token(token: AccessToken, *, actor: Any, ip: str | None = None) -> bool:
    """Revoke a token (its owner or an operator). False if it was already revoked."""
    changed = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor
    )
    token.refresh_from_db()
    if changed:
        audit.record(AuditAction.DELETED, token, actor=actor, ip=ip, kind="api token", revoked=True)
    return bool(changed)


def tokens_of(user: Any) -> QuerySet[AccessToken]:
    return AccessToken.objects.filter(user=user)


def get_token_for_user(user: Any, token_id: Any) -> AccessToken:
    """The one access helper for tokens: someone else's token answers 404."""
    try:
        return tokens_of(user).get(pk=token_id)
    except (AccessToken.DoesNotExist, ValueError, TypeError):
        raise Http404("No such token.") from None


def authenticate(secret: str, *, ip: str | None = None) -> AccessToken | None:
    """The active token for this secret (with an active user), its use recorded and counted; None if unknown.
    Raises Throttled past API_TOKEN_REQUESTS_PER_MINUTE."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    token = (
        AccessToken.objects.select_related("user")
        .filter(digest=digest(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    window = now.replace(second=0, microsecond=0)
    # One UPDATE records the use and counts the request in the current window; in one transaction with the
    # read-back, the row lock (PostgreSQL) or the write lock (SQLite, IMMEDIATE) makes the count exact
    # across threads and processes.
    with transaction.atomic():
        AccessToken.objects.filter(pk=token.pk).update(
            last_used_at=now,
            last_used_ip=ip,
            window_count=Case(When(window_start=window, then=F("window_count") + 1), default=Value(1)),
            window_start=window,
        )
        count = AccessToken.objects.values_list("window_count", flat=True).get(pk=token.pk)
    token.window_count = count  # the rate-limit headers say what is left
    if count > settings.API_TOKEN_REQUESTS_PER_MINUTE:
        raise Throttled(retry_after=max(1, int((window + WINDOW - now).total_seconds()) + 1))
    return token
