"""Who is calling: a personal access token (no CSRF: a script sends it explicitly), or the browser's
session (CSRF checked on writes, as on every web form)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from settings_app.audit import client_ip

from . import tokens
from .errors import ApiError
from .models import AccessToken, Scope

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> AccessToken | None:
        found = tokens.authenticate(token, ip=client_ip(request))
        if found is not None:
            request.user = found.user  # the services and access helpers see the token's owner
            if request.method not in SAFE_METHODS:  # the one place every write's scope is checked
                require_scope(found, Scope.RUN)
        return found


class SessionAuth(APIKeyCookie):
    """The logged-in browser. Not django-ninja's SessionAuth: that one checks CSRF before it knows whether
    anyone is logged in, so a bad token on a POST would answer 'CSRF failed' instead of 401."""

    param_name = settings.SESSION_COOKIE_NAME  # csrf stays True: the docs page then sends X-CSRFToken

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        if not request.user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise ApiError(403, "csrf_failed", "Session requests that change something need the X-CSRFToken header.")
        return request.user


def require_scope(token: AccessToken, scope: Scope) -> None:
    if not token.allows(scope):
        raise ApiError(403, "insufficient_scope", f"This token has the '{token.scope}' scope; this needs '{scope}'.")


def require(request: HttpRequest, scope: Scope) -> None:
    """Tokens carry a scope; a session may do whatever its user may. (Every non-GET request already needed
    the run scope at authentication; endpoints still say what they need.)"""
    auth = getattr(request, "auth", None)
    if isinstance(auth, AccessToken):
        require_scope(auth, scope)
