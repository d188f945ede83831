"""Personal access tokens: made on their owner's page, shown once, stored hashed, scoped, throttled, revocable
by the owner and by operators, audited."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from api.models import AccessToken, Scope
from api.tokens import create_token
from settings_app.models import AuditAction, AuditEvent
from settings_app.roles import OPERATOR, assign_role

from .factories import UserFactory

pytestmark = pytest.mark.django_db
SECRET = re.compile(r'id="new-token"[^>]*value="(awp_[A-Za-z0-9_-]+)"')


def wait_for_a_fresh_minute() -> None:
    """Requests are counted per clock minute: keep a burst inside one."""
    import time

    from django.utils import timezone

    if timezone.now().second >= 55:
        time.sleep(61 - timezone.now().second)


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_it_shows_a_new_token_once_and_stores_only_its_hash(alice_client, alice):
    page = alice_client.post(reverse("tokens:list"), {"name": "nightly script", "scope": "run"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    secret = SECRET.search(page.content.decode()).group(1)
    token = AccessToken.objects.get()
    assert token.user == alice and token.scope == Scope.RUN and token.name == "nightly script"
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(AccessToken.objects.values().get())  # nowhere in the row
    again = alice_client.get(reverse("tokens:list")).content.decode()
    assert secret not in again and token.prefix in again
    assert secret.startswith(token.prefix)


def test_making_and_revoking_a_token_is_audited_and_the_revoked_token_stops_working(alice_client, alice, client):
    new = create_token(user=alice, name="ci", scope="read", ip="203.0.113.9")
    assert Client().get("/api/v1/workflows", **bearer(new.secret)).status_code == 200
    response = alice_client.post(reverse("tokens:revoke", args=[new.token.pk]))
    assert response.status_code == 302
    new.token.refresh_from_db()
    assert new.token.revoked_at is not None and new.token.revoked_by == alice
    events = list(AuditEvent.objects.filter(target_type="api.AccessToken").order_by("at", "pk"))
    assert [e.action for e in events] == [AuditAction.CREATED, AuditAction.DELETED]
    assert events[0].ip_address == "203.0.113.9" and events[1].detail["revoked"] is True
    assert new.secret not in str([e.detail for e in events])
    refused = Client().get("/api/v1/workflows", **bearer(new.secret))
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"


def test_someone_elses_token_cannot_be_revoked_from_their_page(client, alice, bob):
    new = create_token(user=alice, name="mine", scope="read")
    client.force_login(bob)
    assert client.post(reverse("tokens:revoke", args=[new.token.pk])).status_code == 404
    new.token.refresh_from_db()
    assert new.token.is_active
    assert new.token.name not in client.get(reverse("tokens:list")).content.decode()


def test_an_operator_revokes_anyones_token_in_the_admin(client, alice):
    operator = UserFactory(username="olga")
    assign_role(operator, OPERATOR)
    new = create_token(user=alice, name="leaked", scope="run")
    client.force_login(operator)
    response = client.post(
        reverse("admin:api_accesstoken_changelist"),
        {"action": "revoke", "_selected_action": [new.token.pk]},
    )
    assert response.status_code == 302
    new.token.refresh_from_db()
    assert new.token.revoked_by == operator
    assert AuditEvent.objects.filter(action=AuditAction.DELETED, actor=operator).exists()
    assert Client().get("/api/v1/workflows", **bearer(new.secret)).status_code == 401


def test_a_student_cannot_reach_the_token_admin(client, alice):
    other = create_token(user=UserFactory(username="carol"), name="x", scope="read")
    client.force_login(alice)
    client.post(reverse("admin:api_accesstoken_changelist"), {"action": "revoke", "_selected_action": [other.token.pk]})
    other.token.refresh_from_db()
    assert other.token.is_active


def test_it_records_the_last_use(alice):
    new = create_token(user=alice, name="ci", scope="read")
    assert new.token.last_used_at is None
    Client(REMOTE_ADDR="198.51.100.7").get("/api/v1/workflows", **bearer(new.secret))
    new.token.refresh_from_db()
    assert new.token.last_used_at is not None and new.token.last_used_ip == "198.51.100.7"


def test_it_refuses_unknown_and_malformed_tokens_with_401(alice):
    new = create_token(user=alice, name="ci", scope="read")
    for value in ("Bearer awp_nope", f"Bearer {new.secret}x", "Bearer ", "Basic YWxpY2U6cHc=", new.secret):
        response = Client().get("/api/v1/runs", HTTP_AUTHORIZATION=value)
        assert response.status_code == 401, value
        assert response.json()["code"] == "unauthenticated"


def test_a_token_of_an_inactive_user_stops_working(alice):
    new = create_token(user=alice, name="ci", scope="read")
    alice.is_active = False
    alice.save()
    assert Client().get("/api/v1/runs", **bearer(new.secret)).status_code == 401


def test_a_read_token_cannot_start_or_cancel_a_run(alice, catalog):
    new = create_token(user=alice, name="ci", scope="read")
    response = Client().post(
        "/api/v1/runs", {"workflow": "learn-agentic-ai", "mode": "test"}, content_type="application/json",
        **bearer(new.secret),
    )  # fmt: skip
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"


def test_requests_past_the_per_minute_limit_get_429_with_retry_after(alice, settings):
    settings.API_TOKEN_REQUESTS_PER_MINUTE = 3
    new = create_token(user=alice, name="ci", scope="read")
    other = create_token(user=alice, name="other", scope="read")
    wait_for_a_fresh_minute()
    codes = [Client().get("/api/v1/workflows", **bearer(new.secret)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = Client().get("/api/v1/workflows", **bearer(new.secret))
    assert refused.json()["code"] == "throttled" and 1 <= int(refused["Retry-After"]) <= 61
    # counted per user: another token of the same user is over the limit too
    assert Client().get("/api/v1/workflows", **bearer(other.secret)).status_code == 429


def test_token_requests_need_no_csrf_but_session_writes_do(alice, catalog):
    new = create_token(user=alice, name="ci", scope="run")
    body = {"workflow": "learn-agentic-ai", "mode": "validate"}
    strict = Client(enforce_csrf_checks=True)
    by_token = strict.post("/api/v1/runs", body, content_type="application/json", **bearer(new.secret))
    assert by_token.status_code == 201, by_token.content
    strict.force_login(alice)
    no_csrf = strict.post("/api/v1/runs", body, content_type="application/json")
    assert no_csrf.status_code == 403 and no_csrf.json()["code"] == "csrf_failed"
    strict.get(reverse("tokens:list"))  # sets the CSRF cookie, as a page of ours would
    with_csrf = strict.post(
        "/api/v1/runs", body, content_type="application/json", HTTP_X_CSRFTOKEN=strict.cookies["csrftoken"].value
    )
    assert with_csrf.status_code == 201, with_csrf.content
    assert strict.get("/api/v1/runs").status_code == 200  # reads need no CSRF


def test_the_token_page_needs_a_name(alice_client):
    page = alice_client.post(reverse("tokens:list"), {"name": "", "scope": "read"})
    assert page.status_code == 422 and not AccessToken.objects.exists()


def test_the_token_page_needs_a_login(client):
    response = client.get(reverse("tokens:list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.post(reverse("tokens:list"), {"name": "x", "scope": "run"}).status_code == 302
    assert not AccessToken.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_exactly_across_two_server_processes_under_concurrent_requests(live_server, settings, tmp_path):
    """Twenty requests at once, spread over this process's live server and a gunicorn process (each thread
    its own database connection): exactly the limit gets through, so the count is not per process."""
    import socket
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from .support.processes import ROOT, stop, subprocess_env, wait_for

    limit = 7
    settings.API_TOKEN_REQUESTS_PER_MINUTE = limit
    new = create_token(user=UserFactory(username="dora"), name="ci", scope="read")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    other = f"http://127.0.0.1:{port}"
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--threads", "4"],
        cwd=ROOT, env=subprocess_env(API_TOKEN_REQUESTS_PER_MINUTE=str(limit)), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers(other), timeout=30, message="gunicorn to start")
        headers = {"Authorization": f"Bearer {new.secret}"}

        def call(i: int) -> int:
            with httpx.Client(base_url=(live_server.url, other)[i % 2], timeout=30) as http:
                return http.get("/api/v1/runs", headers=headers).status_code

        wait_for_a_fresh_minute()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(call, range(20)))
    finally:
        stop(server)
    assert sorted(codes) == [200] * limit + [429] * (20 - limit)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/api/v1/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
