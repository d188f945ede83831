"""The API's endpoints follow the web's rules, through the same services and access helpers."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.tokens import create_token
from catalog.models import Workflow
from runs import pipeline, services
from runs.models import Mode, Run, Status

from .factories import RunFactory

pytestmark = pytest.mark.django_db
INPUTS = {"topic": "Tool use", "level": "beginner", "session_minutes": 30}


@pytest.fixture
def api(alice):
    """A client that sends alice's run-scoped token."""
    secret = create_token(user=alice, name="tests", scope="run").secret
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def post(client: Client, path: str, body: object = None):
    return client.post(path, body or {}, content_type="application/json")


def finished_test_run(catalog, user, inputs=INPUTS) -> Run:
    run = services.start_run(
        workflow_version=catalog.latest_version, user=user, inputs=inputs, mode=Mode.TEST, queue=False
    )
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    return run


def items(response) -> list:
    assert response.status_code == 200, response.content
    return response.json()["items"]


def test_it_lists_workflows_with_persona_search_and_skill_filters(api, catalog):
    everything = items(api.get("/api/v1/workflows?limit=100"))
    assert {"learn-agentic-ai", "skill-quiz"} <= {w["slug"] for w in everything}
    for_students = items(api.get("/api/v1/workflows?persona=student&limit=100"))
    assert all("student" in w["personas"] for w in for_students) and len(for_students) < len(everything)
    found = items(api.get("/api/v1/workflows?q=agentic"))
    assert "learn-agentic-ai" in [w["slug"] for w in found]
    skill = catalog.latest_version.spec["skills"][0]
    by_skill = items(api.get(f"/api/v1/workflows?skill={skill}"))
    assert by_skill and all(skill in w["skills"] for w in by_skill)
    assert items(api.get("/api/v1/workflows?skill=no-such-skill")) == []


def test_a_disabled_workflow_is_not_listed_and_answers_404(api, catalog):
    Workflow.objects.filter(slug="learn-agentic-ai").update(enabled=False)
    assert "learn-agentic-ai" not in [w["slug"] for w in items(api.get("/api/v1/workflows?limit=100"))]
    response = api.get("/api/v1/workflows/learn-agentic-ai")
    assert response.status_code == 404 and response.json() == {"code": "not_found", "message": "No such workflow."}


def test_a_workflow_shows_its_schema_caps_and_estimates(api, catalog):
    detail = api.get("/api/v1/workflows/learn-agentic-ai").json()
    assert detail["input_schema"]["properties"]["topic"]["type"] == "string"
    assert set(detail["caps"]) >= {"test", "full"} and "budget_usd" in detail["caps"]["full"]
    assert isinstance(detail["estimates"], list)
    assert api.get("/api/v1/workflows/learn-agentic-ai/schema").json() == detail["input_schema"]


def test_it_starts_a_run_with_201_and_the_same_checks_as_the_web(api, alice, catalog):
    response = post(api, "/api/v1/runs", {"workflow": "learn-agentic-ai", "mode": "test", "inputs": INPUTS})
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert run.user == alice and run.mode == Mode.TEST and body["status"] == "queued"
    assert body["url"].endswith(f"/api/v1/runs/{run.pk}") and body["events_url"].endswith("/events")
    assert body["progress"]["steps_total"] == len(catalog.latest_version.spec["steps"])


def test_bad_inputs_answer_422_by_field(api, catalog):
    response = post(api, "/api/v1/runs", {"workflow": "learn-agentic-ai", "inputs": {"topic": "x" * 500}})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_inputs" and "topic" in body["errors"]
    malformed = api.post("/api/v1/runs", "{not json", content_type="application/json")
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_request"
    bad_mode = post(api, "/api/v1/runs", {"workflow": "learn-agentic-ai", "mode": "turbo"})
    assert bad_mode.status_code == 422 and bad_mode.json()["code"] == "invalid_request"
    bad_model = post(api, "/api/v1/runs", {"workflow": "learn-agentic-ai", "model": "nonsense"})
    assert bad_model.status_code == 422 and bad_model.json()["code"] == "invalid_model"
    assert not Run.objects.exists()


def test_a_budget_above_the_cap_is_refused(api, catalog):
    body = {"workflow": "learn-agentic-ai", "mode": "test", "inputs": INPUTS, "budget_usd": "1000"}
    response = post(api, "/api/v1/runs", body)
    assert response.status_code == 409 and response.json()["code"] == "run_refused"
    assert "can only be lowered" in response.json()["message"]


def test_a_full_run_is_locked_until_a_test_run_with_the_same_inputs_passed(api, alice, catalog):
    full = {"workflow": "learn-agentic-ai", "mode": "full", "inputs": INPUTS}
    locked = post(api, "/api/v1/runs", full)
    assert locked.status_code == 409 and locked.json()["code"] == "full_run_locked"
    assert "Run a test first" in locked.json()["message"]
    test_run = finished_test_run(catalog, alice)
    assert post(api, "/api/v1/runs", full).status_code == 201
    other = post(api, "/api/v1/runs", {**full, "inputs": {**INPUTS, "topic": "Memory"}})
    assert other.status_code == 409 and other.json()["code"] == "full_run_locked"
    from_run = post(api, f"/api/v1/runs/{test_run.pk}/full")
    assert from_run.status_code == 201 and from_run.json()["mode"] == "full"


def test_the_progression_counts_for_one_user_at_a_time(api, bob, catalog):
    """Bob's passed test run does not unlock alice's full run through the API (the web rule, per user)."""
    finished_test_run(catalog, bob)
    response = post(api, "/api/v1/runs", {"workflow": "learn-agentic-ai", "mode": "full", "inputs": INPUTS})
    assert response.status_code == 409 and response.json()["code"] == "full_run_locked"


def test_past_the_per_user_queue_limit_a_run_is_refused_with_429(api, alice, catalog, settings):
    settings.RUNS_ACTIVE_PER_USER = 1
    body = {"workflow": "learn-agentic-ai", "mode": "test", "inputs": INPUTS}
    assert post(api, "/api/v1/runs", body).status_code == 201
    refused = post(api, "/api/v1/runs", body)
    assert refused.status_code == 429 and refused.json()["code"] == "queue_full"
    assert int(refused["Retry-After"]) > 0


def test_someone_elses_run_answers_404_for_every_endpoint(api, bob, catalog):
    run = finished_test_run(catalog, bob)
    base = f"/api/v1/runs/{run.pk}"
    for path in (base, f"{base}/artifacts", f"{base}/artifacts/notes.md", f"{base}/events"):
        response = api.get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path
    for action in ("cancel", "resume", "rerun", "replay", "full"):
        response = post(api, f"{base}/{action}")
        assert response.status_code == 404 and response.json()["code"] == "not_found", action
    assert Run.objects.count() == 1
    assert str(run.pk) not in api.get("/api/v1/runs").content.decode()


def test_it_reads_a_finished_run_and_downloads_its_notes(api, alice, catalog):
    run = finished_test_run(catalog, alice)
    body = api.get(f"/api/v1/runs/{run.pk}").json()
    assert body["status"] == "succeeded" and body["finished"] is True and body["reason"] == run.reason
    assert body["tokens"]["total"] == run.tokens > 0
    assert all(step["done"] for step in body["steps"]) and body["progress"]["percent"] == 100
    names = {a["name"]: a for a in body["artifacts"]}
    assert {"notes.md", "trace.json"} <= set(names)
    assert items(api.get(f"/api/v1/runs/{run.pk}/artifacts")) == body["artifacts"]
    notes = api.get(names["notes.md"]["url"])
    assert notes.status_code == 200 and notes["Content-Type"].startswith("text/markdown")
    assert b"".join(notes.streaming_content).decode().startswith("# Learn Agentic AI: Tool use")
    missing = api.get(f"/api/v1/runs/{run.pk}/artifacts/secrets.txt")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_cancel_resume_rerun_and_replay(api, alice, catalog):
    queued = RunFactory(user=alice, workflow_version=catalog.latest_version, inputs=INPUTS, steps_total=4)
    cancelled = post(api, f"/api/v1/runs/{queued.pk}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = post(api, f"/api/v1/runs/{queued.pk}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "run_finished"
    resumed = post(api, f"/api/v1/runs/{queued.pk}/resume")
    assert resumed.status_code == 201 and resumed.json()["resumed_from"] == str(queued.pk)
    done = finished_test_run(catalog, alice)
    not_resumable = post(api, f"/api/v1/runs/{done.pk}/resume")
    assert not_resumable.status_code == 409 and not_resumable.json()["code"] == "run_refused"
    rerun = post(api, f"/api/v1/runs/{done.pk}/rerun").json()
    assert rerun["inputs"] == done.inputs and rerun["id"] != str(done.pk) and not rerun["replay"]
    assert post(api, f"/api/v1/runs/{done.pk}/replay").json()["replay"] is True


def test_my_runs_are_filtered_and_paginated(api, alice, bob, catalog):
    version = catalog.latest_version
    for _ in range(3):
        RunFactory(user=alice, workflow_version=version, status=Status.FAILED)
    RunFactory(user=alice, workflow_version=version, status=Status.SUCCEEDED, mode=Mode.FULL)
    RunFactory(user=bob, workflow_version=version, status=Status.FAILED)
    page = api.get("/api/v1/runs?status=failed&limit=2").json()
    assert len(page["items"]) == 2 and {r["status"] for r in page["items"]} == {"failed"}
    rest = api.get(page["next"]).json()
    assert len(rest["items"]) == 1 and rest["next"] is None
    assert {r["id"] for r in page["items"] + rest["items"]} == {
        str(r.pk) for r in Run.objects.filter(user=alice, status="failed")
    }
    assert len(items(api.get("/api/v1/runs?mode=full"))) == 1
    assert len(items(api.get("/api/v1/runs?workflow=learn-agentic-ai"))) == 4
    bad = api.get("/api/v1/runs?status=exploded")
    assert bad.status_code == 422 and "status" in bad.json()["errors"]


def test_the_run_list_takes_a_fixed_number_of_queries(api, alice, catalog, django_assert_max_num_queries):
    for _ in range(3):
        finished_test_run(catalog, alice)
    with django_assert_max_num_queries(10) as few:
        api.get("/api/v1/runs")
    for _ in range(3):
        finished_test_run(catalog, alice)
    with django_assert_max_num_queries(len(few.captured_queries)):
        api.get("/api/v1/runs")


def test_every_error_is_json_with_a_code_and_a_message(catalog):
    anonymous = Client()
    for method, path in (("get", "/api/v1/runs"), ("post", "/api/v1/runs"), ("get", "/api/v1/workflows")):
        response = getattr(anonymous, method)(path)
        assert response.status_code == 401 and set(response.json()) >= {"code", "message"}, path
    unknown = anonymous.get("/api/v1/nope/nothing")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    bad_id = anonymous.get("/api/v1/runs/not-a-uuid")
    assert bad_id.status_code == 404 and bad_id.json()["code"] == "not_found"


def test_an_operator_session_reads_anyones_run_like_the_web(client, bob, catalog):
    from settings_app.roles import OPERATOR, assign_role

    from .factories import UserFactory

    run = finished_test_run(catalog, bob)
    operator = UserFactory(username="olga")
    assign_role(operator, OPERATOR)
    client.force_login(operator)
    assert client.get(f"/api/v1/runs/{run.pk}").json()["id"] == str(run.pk)


def test_a_wrong_method_and_an_oversized_body_get_json_errors(api, catalog):
    wrong = api.delete("/api/v1/runs")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    assert "POST" in wrong["Allow"]
    huge = {"workflow": "learn-agentic-ai", "inputs": {"topic": "x" * (2 * 1024 * 1024)}}
    too_large = post(api, "/api/v1/runs", huge)
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large"
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "content_type, body",
    [("multipart/form-data", b"--x\r\n"), ("multipart/form-data; boundary=", b"--\r\n")],
    ids=["no boundary", "empty boundary"],
)
def test_an_unreadable_multipart_body_gets_400_not_a_500(api, catalog, content_type, body):
    response = api.generic("POST", "/api/v1/runs/upload", body, content_type=content_type)
    assert response.status_code == 400 and response.json()["code"] == "bad_request", response.content
    assert not Run.objects.exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "workflow": st.sampled_from(["learn-agentic-ai", "nope", ""]) | json_values,
            "mode": st.sampled_from(["validate", "test", "full"]) | json_values,
            "inputs": st.dictionaries(st.sampled_from([*INPUTS, "extra"]), json_values, max_size=5) | json_values,
            "model": st.sampled_from(["openai/gpt-4o-mini", "nonsense"]) | json_values,
            "budget_usd": st.sampled_from(["0.001", "-1", "1e400", "abc"]) | json_values,
        },
    )
    | json_values
)


@given(body=bodies)
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_body_gets_a_run_or_a_json_error_never_a_500(api, catalog, body):
    response = api.post("/api/v1/runs", json.dumps(body), content_type="application/json")
    assert response.status_code in (201, 404, 409, 422), (body, response.content)
    if response.status_code != 201:
        assert set(response.json()) >= {"code", "message"}


def test_the_workflow_list_takes_a_fixed_number_of_queries(api, catalog, django_assert_max_num_queries):
    with django_assert_max_num_queries(12) as counted:
        workflows = api.get("/api/v1/workflows?limit=100").json()["items"]
    assert len(workflows) > 10  # far fewer queries than workflows: none per row
    assert len(counted.captured_queries) < len(workflows)
