"""The OpenAPI 3.1 description is served, describes every endpoint, and REAL responses match it."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from jsonschema import Draft202012Validator, FormatChecker

from api.tokens import create_token
from runs import pipeline, services
from runs.models import Mode

from .factories import RunFactory

pytestmark = pytest.mark.django_db
INPUTS = {"topic": "Tool use", "level": "beginner", "session_minutes": 30}


@pytest.fixture
def document() -> dict:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def check(document: dict, method: str, path: str, response) -> None:
    """Validate a real response body against the schema the description gives for its path, method, status."""
    for template, operations in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path.split("?")[0]) and method in operations:
            break
    else:
        raise AssertionError(f"{method.upper()} {path} is not in the description")
    described = operations[method]["responses"]
    assert str(response.status_code) in described, f"{method.upper()} {path} answered an undescribed {response}"
    schema = described[str(response.status_code)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]}, format_checker=FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not errors, f"{method.upper()} {path} ({response.status_code}) does not match: {errors[:5]}"


def test_it_is_openapi_3_1_with_both_ways_to_authenticate(document):
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert {"TokenAuth", "SessionAuth"} <= set(schemes) and schemes["TokenAuth"]["scheme"] == "bearer"
    assert {"/api/v1/workflows", "/api/v1/runs", "/api/v1/runs/{run_id}/events"} <= set(document["paths"])


def test_real_responses_match_the_description(document, alice, bob, catalog):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='run').secret}")
    reader = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='r', scope='read').secret}")
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs=INPUTS, mode=Mode.TEST, queue=False
    )
    pipeline.execute(run.pk)
    queued = RunFactory(user=alice, workflow_version=catalog.latest_version, inputs=INPUTS)
    bobs = RunFactory(user=bob, workflow_version=catalog.latest_version)

    def post(path: str, body: object = None):
        return api.post(path, body or {}, content_type="application/json")

    calls = [
        ("get", "/api/v1/workflows", api.get("/api/v1/workflows?persona=student")),
        ("get", "/api/v1/workflows/learn-agentic-ai", api.get("/api/v1/workflows/learn-agentic-ai")),
        ("get", "/api/v1/workflows/x/schema", api.get("/api/v1/workflows/learn-agentic-ai/schema")),
        ("get", "/api/v1/workflows/x", api.get("/api/v1/workflows/nope")),
        ("get", "/api/v1/runs", api.get("/api/v1/runs?limit=2")),
        ("get", "/api/v1/runs", api.get("/api/v1/runs?status=exploded")),
        ("get", "/api/v1/runs", Client().get("/api/v1/runs")),
        ("get", f"/api/v1/runs/{run.pk}", api.get(f"/api/v1/runs/{run.pk}")),
        ("get", f"/api/v1/runs/{bobs.pk}", api.get(f"/api/v1/runs/{bobs.pk}")),
        ("get", f"/api/v1/runs/{run.pk}/artifacts", api.get(f"/api/v1/runs/{run.pk}/artifacts")),
        ("post", "/api/v1/runs", post("/api/v1/runs", {"workflow": "learn-agentic-ai", "inputs": INPUTS})),
        ("post", "/api/v1/runs", post("/api/v1/runs", {"workflow": "learn-agentic-ai", "mode": "full"})),
        ("post", "/api/v1/runs", post("/api/v1/runs", {"workflow": "learn-agentic-ai", "inputs": {"topic": 5}})),
        ("post", "/api/v1/runs", post("/api/v1/runs", {"mode": "test"})),
        ("post", "/api/v1/runs", reader.post("/api/v1/runs", {"workflow": "x"}, content_type="application/json")),
        ("post", f"/api/v1/runs/{queued.pk}/cancel", post(f"/api/v1/runs/{queued.pk}/cancel")),
        ("post", f"/api/v1/runs/{queued.pk}/cancel", post(f"/api/v1/runs/{queued.pk}/cancel")),
        ("post", f"/api/v1/runs/{queued.pk}/resume", post(f"/api/v1/runs/{queued.pk}/resume")),
        ("post", f"/api/v1/runs/{run.pk}/rerun", post(f"/api/v1/runs/{run.pk}/rerun")),
        ("post", f"/api/v1/runs/{run.pk}/replay", post(f"/api/v1/runs/{run.pk}/replay")),
        ("post", f"/api/v1/runs/{run.pk}/full", post(f"/api/v1/runs/{run.pk}/full")),
    ]
    statuses = set()
    for method, path, response in calls:
        check(document, method, path, response)
        statuses.add(response.status_code)
    assert statuses == {200, 201, 202, 401, 403, 404, 409, 422}


def test_the_interactive_docs_use_our_own_static_files(document):
    page = Client().get("/api/v1/docs").content.decode()
    assets = re.findall(r'<(?:script|link|img)\b[^>]*?(?:src|href)="([^"]+)"', page)  # what the page loads
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), f"{asset} is not one of our static files"
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "<script>" not in page  # our CSP allows no inline script
