"""API tokens, round three: they expire, one account holds a bounded number, the request limit is per user
(not per token) and starts again each minute, and every write needs the run scope, checked in one place."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api import tokens
from api.models import AccessToken
from api.tokens import TooManyTokens, create_token
from api.v1 import api
from runs.models import Run, Status

from .factories import UserFactory
from .test_api_tokens import bearer, wait_for_a_fresh_minute

pytestmark = pytest.mark.django_db


def _write_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the API that is not a read, from the router itself: a new write endpoint is
    covered without anyone remembering to add it here."""
    found = []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    if method not in ("GET", "HEAD", "OPTIONS"):
                        path = re.sub(r"\{\w+:(\w+)\}", r"{\1}", path)  # {uuid:run_id} -> {run_id}
                        found.append((method, "/api/v1/" + (prefix + path).strip("/")))
    return found


def test_a_read_token_changes_nothing_through_any_write_endpoint(alice, catalog):
    """T2: a read token must not cancel (or resume, rerun, replay, start) anything."""
    read = create_token(user=alice, name="dashboard", scope="read")
    run = Run.objects.create(
        user=alice, workflow_version=catalog.current_version, mode="test", status=Status.QUEUED, inputs={}
    )
    routes = _write_routes()
    assert {"/api/v1/runs/{run_id}/cancel", "/api/v1/runs"} <= {p for _, p in routes}
    before = Run.objects.count()
    for method, path in routes:
        url = path.replace("{run_id}", str(run.pk))
        response = Client().generic(method, url, '{"workflow": "learn-agentic-ai", "mode": "test"}',
                                    content_type="application/json", **bearer(read.secret))  # fmt: skip
        assert response.status_code == 403, (method, url, response.content)
        assert response.json()["code"] == "insufficient_scope"
    run.refresh_from_db()
    assert run.status == Status.QUEUED and not run.cancel_requested
    assert Run.objects.count() == before


def test_a_run_token_may_cancel_its_owners_run(alice, catalog):
    run_token = create_token(user=alice, name="ci", scope="run")
    run = Run.objects.create(
        user=alice, workflow_version=catalog.current_version, mode="test", status=Status.QUEUED, inputs={}
    )
    response = Client().post(f"/api/v1/runs/{run.pk}/cancel", **bearer(run_token.secret))
    assert response.status_code == 202, response.content


def test_the_per_minute_count_starts_again_in_the_next_minute(alice, settings, monkeypatch):
    """T4: a counter that never reset would lock the user out for good after one busy minute."""
    settings.API_TOKEN_REQUESTS_PER_MINUTE = 2
    new = create_token(user=alice, name="ci", scope="read")
    minute = timezone.now().replace(second=10, microsecond=0)
    monkeypatch.setattr(tokens.timezone, "now", lambda: minute)
    codes = [Client().get("/api/v1/workflows", **bearer(new.secret)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    minute = minute + timedelta(minutes=1)
    codes = [Client().get("/api/v1/workflows", **bearer(new.secret)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    minute = minute + timedelta(minutes=7)
    assert Client().get("/api/v1/workflows", **bearer(new.secret)).status_code == 200


def test_the_limit_counts_every_token_of_one_user_together(alice, bob, settings):
    settings.API_TOKEN_REQUESTS_PER_MINUTE = 4
    mine = [create_token(user=alice, name=f"t{n}", scope="read").secret for n in range(3)]
    wait_for_a_fresh_minute()
    codes = [Client().get("/api/v1/workflows", **bearer(mine[n % 3])).status_code for n in range(6)]
    assert codes == [200, 200, 200, 200, 429, 429]
    bobs = create_token(user=bob, name="b", scope="read").secret
    assert Client().get("/api/v1/workflows", **bearer(bobs)).status_code == 200  # someone else's allowance


def test_a_token_expires_after_ninety_days_by_default_and_then_stops_working(alice, monkeypatch):
    new = create_token(user=alice, name="ci", scope="read")
    assert new.token.expires_at is not None
    assert abs(new.token.expires_at - (timezone.now() + timedelta(days=90))) < timedelta(minutes=1)
    assert Client().get("/api/v1/workflows", **bearer(new.secret)).status_code == 200
    AccessToken.objects.filter(pk=new.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = Client().get("/api/v1/workflows", **bearer(new.secret))
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"


def test_the_owner_picks_the_expiry_or_none_on_the_token_page(alice_client, alice):
    alice_client.post(reverse("tokens:list"), {"name": "a week", "scope": "read", "expires_in_days": "7"})
    alice_client.post(reverse("tokens:list"), {"name": "forever", "scope": "read", "expires_in_days": "0"})
    week, forever = AccessToken.objects.get(name="a week"), AccessToken.objects.get(name="forever")
    assert week.expires_at is not None and week.expires_at < timezone.now() + timedelta(days=8)
    assert forever.expires_at is None
    page = alice_client.get(reverse("tokens:list")).content.decode()
    assert "Expires" in page and "never" in page


def test_one_account_holds_at_most_the_cap_of_working_tokens(alice_client, alice, settings):
    settings.API_TOKENS_PER_USER = 3
    for n in range(3):
        create_token(user=alice, name=f"t{n}", scope="read")
    with pytest.raises(TooManyTokens):
        create_token(user=alice, name="one too many", scope="read")
    page = alice_client.post(reverse("tokens:list"), {"name": "via page", "scope": "run"})
    assert page.status_code == 422 and "You already have 3 working tokens" in page.content.decode()
    assert AccessToken.objects.filter(user=alice).count() == 3
    tokens.revoke_token(AccessToken.objects.filter(user=alice).first(), actor=alice)  # a revoked one frees a place
    assert create_token(user=alice, name="again", scope="read")
    assert create_token(user=UserFactory(username="erin"), name="hers", scope="read")  # per user


def _https_answer(extra_env: dict[str, str]) -> str:
    """What a production-settings server does with a plain-HTTP request claiming X-Forwarded-Proto: https."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "HTTPS": "true",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ENV_FILE": os.devnull,
        "ALLOWED_HOSTS": "testserver",
        **extra_env,
    }
    code = (
        "import django; django.setup();"
        "from django.test import RequestFactory; from django.middleware.security import SecurityMiddleware;"
        "r = RequestFactory().get('/login/', HTTP_X_FORWARDED_PROTO='https');"
        "print(r.is_secure(), SecurityMiddleware(lambda q: None).process_request(r) is not None)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_client_sent_forwarded_proto_is_trusted_only_behind_a_configured_proxy():
    # No proxy configured: the header is the client's word, the request is plain HTTP and is redirected.
    assert _https_answer({}) == "False True"
    # Behind a proxy that sets the header itself: the request counts as HTTPS.
    assert _https_answer({"BEHIND_PROXY": "true"}) == "True False"
