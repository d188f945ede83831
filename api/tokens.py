"""Personal access tokens: making, revoking, and checking one on a request (last use and throttling)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.http import Http404
from django.utils import timezone

from settings_app import audit
from settings_app.models import AuditAction

from .models import AccessToken, RequestWindow, Scope

PREFIX = "awp_"
WINDOW = timedelta(minutes=1)


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"Too many API requests from your account: wait {retry_after} s.")


class TooManyTokens(Exception):
    """The user already has as many working tokens as one account may hold."""


@dataclass(frozen=True)
class NewToken:
    token: AccessToken
    secret: str  # shown to its owner once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def working_tokens(user: Any) -> QuerySet[AccessToken]:
    """Tokens that still open the API: not revoked, not expired."""
    return tokens_of(user).filter(revoked_at__isnull=True).exclude(expires_at__lte=timezone.now())


def create_token(
    *, user: Any, name: str, scope: str, ip: str | None = None, expires_in_days: int | None = None
) -> NewToken:
    """A new token, valid for `expires_in_days` (settings.API_TOKEN_DAYS when not given; 0: never expires).
    Raises TooManyTokens past settings.API_TOKENS_PER_USER working tokens."""
    if scope not in Scope.values:
        raise ValueError(f"Unknown scope '{scope}': use read or run.")
    days = settings.API_TOKEN_DAYS if expires_in_days is None else expires_in_days
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one creation per user at a time
        if working_tokens(user).count() >= settings.API_TOKENS_PER_USER:
            raise TooManyTokens(
                f"You already have {settings.API_TOKENS_PER_USER} working tokens: revoke one you no longer use."
            )
        # The user's request counter exists from their first token on, so counting is one UPDATE a request.
        RequestWindow.objects.get_or_create(user_id=user.pk, defaults={"window_start": timezone.now(), "count": 0})
        secret = PREFIX + secrets.token_urlsafe(32)
        token = AccessToken.objects.create(
            user=user, name=name.strip()[:80], scope=scope, prefix=secret[: len(PREFIX) + 6], digest=digest(secret),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )  # fmt: skip
        audit.record(AuditAction.CREATED, token, actor=user, ip=ip, kind="api token", scope=scope, days=days or None)
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
    """The working token for this secret (with an active user), its use recorded and counted; None if unknown,
    revoked or expired. Raises Throttled past API_TOKEN_REQUESTS_PER_MINUTE requests of its user."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    now = timezone.now()
    token = (
        AccessToken.objects.select_related("user")
        .filter(digest=digest(secret), revoked_at__isnull=True, user__is_active=True)
        .exclude(expires_at__lte=now)
        .first()
    )
    if token is None:
        return None
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    token.window_count = count_request(token.user_id, now=now)  # the rate-limit headers say what is left
    return token


def count_request(user_id: int, *, now: datetime) -> int:
    """Count one request in the user's current clock minute (a new minute starts again at 1), in one
    conditional UPDATE that only counts while under the limit: the row lock (PostgreSQL re-checks the
    condition after it) or the write lock (SQLite) makes the count exact across threads and processes.
    Returns the user's count in this minute; raises Throttled past the limit."""
    window = now.replace(second=0, microsecond=0)
    limit = settings.API_TOKEN_REQUESTS_PER_MINUTE
    rows = RequestWindow.objects.filter(user_id=user_id).filter(~Q(window_start=window) | Q(count__lt=limit))
    bump = {"count": Case(When(window_start=window, then=F("count") + 1), default=Value(1)), "window_start": window}
    if rows.update(**bump):
        return _count(user_id)
    _, created = RequestWindow.objects.get_or_create(user_id=user_id, defaults={"window_start": window, "count": 1})
    if created or rows.update(**bump):  # the user's first request, or a first made at the same moment
        return _count(user_id)
    raise Throttled(retry_after=max(1, int((window + WINDOW - now).total_seconds()) + 1))


def _count(user_id: int) -> int:
    return RequestWindow.objects.values_list("count", flat=True).get(user_id=user_id)
