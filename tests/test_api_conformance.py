"""What a client developer relies on (docs/api.md): JSON on every path and method, cursor paging on every list,
Idempotency-Key, Location, X-Request-Id, rate-limit headers, Retry-After on every 429, money as decimal
strings, an unoffered model refused at creation."""

from __future__ import annotations

import pytest
from django.test import Client

from api.tokens import create_token
from providers import services as provider_services
from runs.models import Run, Status

from .factories import RunFactory

pytestmark = pytest.mark.django_db
INPUTS = {"topic": "Tool use", "level": "beginner", "session_minutes": 30}
NEW_RUN = {"workflow": "learn-agentic-ai", "mode": "test", "inputs": INPUTS}


@pytest.fixture
def api(alice):
    secret = create_token(user=alice, name="tests", scope="run").secret
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", enforce_csrf_checks=True)


def post(client: Client, path: str, body: object = None, **headers):
    return client.post(path, body or {}, content_type="application/json", **headers)


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/v1/runs/"),  # a trailing slash
        ("post", "/api/v1/runs/abc/cancel"),  # not a run id
        ("delete", "/api/v1/nothing"),
        ("put", "/api/v1/runs/"),
        ("get", "/api/v1/workflows/"),
    ],
)
def test_a_wrong_path_is_json_404_even_for_a_bearer_post_without_csrf(api, catalog, method, path):
    response = api.generic(method.upper(), path, "{}", content_type="application/json")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


def test_every_list_pages_by_cursor_until_next_is_null(api, alice, catalog):
    for _ in range(5):
        RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.FAILED)
    seen, url, pages = [], "/api/v1/runs?limit=2", 0
    while url:
        page = api.get(url).json()
        seen += [r["id"] for r in page["items"]]
        url, pages = page["next"], pages + 1
        if pages == 1:  # a run started meanwhile shifts nothing: it is newer than every cursor
            RunFactory(user=alice, workflow_version=catalog.latest_version)
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    slugs, url = [], "/api/v1/workflows?limit=3"
    while url:
        page = api.get(url).json()
        slugs += [w["slug"] for w in page["items"]]
        url = page["next"]
    assert slugs == sorted(slugs) and len(slugs) == len(set(slugs)) > 3


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=-5", "limit=101", "limit=x", "after=nonsense", "after=!!!", "since=yesterday"]
)
def test_bad_paging_and_filter_values_are_422(api, catalog, query):
    for path in ("/api/v1/runs", "/api/v1/workflows"):
        if "since" in query and path.endswith("workflows"):
            continue
        response = api.get(f"{path}?{query}")
        assert response.status_code == 422 and response.json()["code"] == "invalid_request", (path, query)


def test_a_repeated_idempotency_key_answers_the_first_run(api, alice, catalog):
    first = post(api, "/api/v1/runs", NEW_RUN, HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(api, "/api/v1/runs", NEW_RUN, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert Run.objects.count() == 1
    other_body = post(api, "/api/v1/runs", {**NEW_RUN, "mode": "validate"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert other_body.status_code == 422 and other_body.json()["code"] == "idempotency_key_reused"
    assert post(api, "/api/v1/runs", NEW_RUN, HTTP_IDEMPOTENCY_KEY="k-2").json()["id"] != first.json()["id"]
    assert post(api, "/api/v1/runs", NEW_RUN).status_code == 201  # without a key, a new run each time
    assert Run.objects.count() == 3


def test_a_refused_request_gives_its_idempotency_key_back(api, alice, catalog):
    locked = post(api, "/api/v1/runs", {**NEW_RUN, "mode": "full"}, HTTP_IDEMPOTENCY_KEY="k")
    assert locked.status_code == 409
    assert post(api, "/api/v1/runs", NEW_RUN, HTTP_IDEMPOTENCY_KEY="k").status_code == 201


def test_a_created_run_has_a_location_and_every_answer_a_request_id_and_rate_limit(api, alice, catalog):
    created = post(api, "/api/v1/runs", NEW_RUN)
    assert created.status_code == 201 and created["Location"] == created.json()["url"]
    assert len(created["X-Request-Id"]) == 32
    assert created["RateLimit-Limit"] == "120" and int(created["RateLimit-Remaining"]) == 119
    assert 0 < int(created["RateLimit-Reset"]) <= 60
    echoed = api.get("/api/v1/runs", HTTP_X_REQUEST_ID="trace-42")
    assert echoed["X-Request-Id"] == "trace-42" and int(echoed["RateLimit-Remaining"]) == 118
    forged = api.get("/api/v1/runs", HTTP_X_REQUEST_ID="a\nb" + "x" * 300)
    assert forged["X-Request-Id"] != "a\nb" and len(forged["X-Request-Id"]) == 32
    assert Client().get("/api/v1/nowhere")["X-Request-Id"]
    rerun = post(api, f"/api/v1/runs/{created.json()['id']}/rerun")
    assert rerun.status_code == 201 and rerun["Location"] == rerun.json()["url"]


def test_money_is_a_decimal_string_never_an_exponent(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, cost_usd="0.00000000")
    Run.objects.filter(pk=run.pk).update(estimated_cost_usd="0.00012000")
    body = api.get(f"/api/v1/runs/{run.pk}").json()
    assert body["cost_usd"] == "0" and body["estimated_cost_usd"] == "0.00012"


def test_a_model_the_workflow_does_not_offer_is_422_before_anything_starts(api, catalog):
    for model in ("openai/gpt-4o-mini", "openai/made-up", "gemini/../../../../pwned-path"):
        response = post(api, "/api/v1/runs", {**NEW_RUN, "model": model})
        assert response.status_code == 422 and response.json()["code"] == "invalid_model", model
    assert not Run.objects.exists()
    provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="Fake", api_key="sk-test-0123456789abcdefghijkl",
        api_base="http://127.0.0.1:9/v1", allow_private_network=True,
    )  # fmt: skip
    offered = api.get("/api/v1/workflows/learn-agentic-ai").json()["estimates"][0]["model"]
    assert post(api, "/api/v1/runs", {**NEW_RUN, "model": offered}).status_code == 201
    assert post(api, "/api/v1/runs", {**NEW_RUN, "model": "offline/demo"}).status_code == 201
