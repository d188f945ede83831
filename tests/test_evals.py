"""Eval sets: saving input sets (checked against the workflow's inputs), running them as a batch of test runs
on several models through the ordinary engine, the matrix, and who may see or run them."""

from __future__ import annotations

import pytest

from evals import services
from evals.matrix import build
from evals.models import EvalBatch, EvalSet
from runs import pipeline
from runs.models import Mode, Run, Status

from .factories import UserFactory

pytestmark = pytest.mark.django_db
LINES = '{"topic": "Memory"}\n\n{"topic": "Planning", "level": "advanced"}\n{"topic": "Tool use"}\n'


@pytest.fixture
def olivia(db):
    return UserFactory(username="olivia", is_staff=True, is_superuser=True)


def test_input_sets_are_one_json_object_per_line_and_a_bad_line_is_named():
    assert [c["topic"] for c in services.parse_cases(LINES)] == ["Memory", "Planning", "Tool use"]
    for text, message in [
        ('{"topic": "x"}\n{nope', "Line 2 is not JSON"),
        ("[1, 2]", "Line 1 must be a JSON object"),
        ("  \n", "at least one input set"),
    ]:
        with pytest.raises(services.EvalError, match=message):
            services.parse_cases(text)


def test_a_set_with_one_bad_input_set_saves_nothing(catalog, olivia):
    cases = [{"topic": "Memory"}, {"topic": "Memory", "level": "guru"}]
    with pytest.raises(services.EvalError, match="Input set 2: level"):
        services.save_set(workflow=catalog, user=olivia, name="levels", cases=cases)
    assert not EvalSet.objects.exists()


def test_a_batch_runs_every_input_set_on_every_model_as_test_runs_and_fills_the_matrix(catalog, olivia, openai):
    eval_set = services.save_set(workflow=catalog, user=olivia, name="basics", cases=services.parse_cases(LINES))
    batch = services.run_batch(eval_set=eval_set, user=olivia, models=["offline/demo", "openai/gpt-4o-mini"])
    runs = Run.objects.filter(eval_entry__batch=batch)
    assert runs.count() == 6 and set(runs.values_list("mode", flat=True)) == {Mode.TEST}
    assert build(batch).finished is False
    for run in runs.filter(requested_models=["offline/demo"]):
        pipeline.execute(run.pk)
    matrix = build(batch)
    offline, openai = matrix.models
    assert (offline.model, offline.finished, offline.passed, offline.pass_rate) == ("offline/demo", 3, 3, 100)
    assert offline.mean_score is not None and offline.mean_score >= 0.6
    assert (openai.finished, openai.pass_rate) == (0, None)
    assert [row.label for row in matrix.rows] == ["1. Memory", "2. Planning", "3. Tool use"]
    assert [cell.model for cell in matrix.rows[0].cells] == ["offline/demo", "openai/gpt-4o-mini"]


def test_a_batch_that_does_not_fit_the_per_user_limit_starts_nothing(catalog, olivia, openai, settings):
    settings.RUNS_ACTIVE_PER_USER = 4
    eval_set = services.save_set(workflow=catalog, user=olivia, name="basics", cases=services.parse_cases(LINES))
    with pytest.raises(services.EvalError, match="The batch was not started: You already have 4 runs"):
        services.run_batch(eval_set=eval_set, user=olivia, models=["offline/demo", "openai/gpt-4o-mini"])
    assert not Run.objects.exists() and not EvalBatch.objects.exists()


def test_students_see_no_eval_sets_and_cannot_run_one(catalog, olivia, client):
    eval_set = services.save_set(workflow=catalog, user=olivia, name="basics", cases=[{"topic": "Memory"}])
    client.force_login(UserFactory(username="sam"))
    assert client.get("/evals/").status_code == 404
    assert client.get(f"/evals/{eval_set.pk}/").status_code == 404
    assert client.post(f"/evals/{eval_set.pk}/", {"models": ["offline/demo"]}).status_code == 404
    assert not Run.objects.exists()


def test_an_operator_saves_and_runs_a_set_from_the_pages(catalog, olivia, client):
    client.force_login(olivia)
    bad = client.post("/evals/", {"workflow": "learn-agentic-ai", "name": "basics", "cases": '{"topic": 1}'})
    assert bad.status_code == 422 and "Input set 1: topic" in bad.content.decode()
    saved = client.post("/evals/", {"workflow": "learn-agentic-ai", "name": "basics", "cases": LINES})
    assert saved.status_code == 302
    eval_set = EvalSet.objects.get()
    started = client.post(saved["Location"], {"models": ["offline/demo"]})
    assert started.status_code == 302
    batch = EvalBatch.objects.get()
    for run in Run.objects.all():
        pipeline.execute(run.pk)
    page = client.get(started["Location"]).content.decode()
    assert "100% (3 of 3)" in page and page.count("/runs/") >= 3
    polled = client.get(started["Location"], HTTP_HX_REQUEST="true")
    assert polled.status_code == 286  # finished: htmx stops polling
    assert Run.objects.filter(status=Status.SUCCEEDED).count() == 3 and batch.eval_set == eval_set
