"""Operators write workflows: drafts students never see, publish, versions, diffs, rollback, line-numbered
errors; the same through the API; sync_workflows never replaces an operator's published version silently."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client

from api.tokens import create_token
from catalog import authoring
from catalog.models import Persona, VersionStatus, Workflow
from catalog.services import sync_workflows
from catalog.spec_lines import line_of, problems_in
from runs import services
from runs.models import Mode, Run
from settings_app.models import AuditAction, AuditEvent
from settings_app.roles import OPERATOR, assign_role, setup_roles

from .factories import MINIMAL_SPEC, UserFactory

pytestmark = pytest.mark.django_db

GOOD = yaml.safe_dump({**MINIMAL_SPEC, "id": "pasta-helper", "title": "Pasta helper"}, sort_keys=False)


@pytest.fixture
def olga(db):
    Persona.ensure_defaults()  # as every start does (sync_workflows)
    setup_roles()
    operator = UserFactory(username="olga")
    assign_role(operator, OPERATOR)
    return operator


def draft_of(text: str, olga, workflow=None):
    return authoring.save_draft(text=text, user=olga, workflow=workflow)


def test_a_problem_is_pinned_to_the_line_that_has_it():
    text = GOOD.replace("maxLength: 50", "maxLength: fifty")
    spec, problems = problems_in(text)
    assert spec is None
    (problem,) = problems
    assert problem.field == "inputs.properties.topic.maxLength"
    assert "maxLength: fifty" in text.splitlines()[problem.line - 1]


def test_a_yaml_syntax_error_and_a_rule_the_schema_cannot_say_get_lines_too():
    broken = GOOD.replace("title: Pasta helper", "title: [Pasta helper")
    _, (syntax,) = problems_in(broken)
    assert syntax.field == "(yaml)" and syntax.line is not None
    twice = GOOD.replace("- name: notes.md", "- name: trace.json")
    _, (rule,) = problems_in(twice)
    assert rule.field == "artifacts[0].name" and "trace.json" in twice.splitlines()[rule.line - 1]


def test_line_of_falls_back_to_the_parent_when_a_field_is_missing():
    assert line_of("a:\n  b: 1\n", ["a", "c"]) == 1
    assert line_of("a:\n  b: 1\n", ["a", "b"]) == 2


def test_a_draft_is_invisible_to_students_on_every_page_and_endpoint(client, olga, alice):
    draft = draft_of(GOOD, olga)
    assert draft.status == VersionStatus.DRAFT and draft.workflow.latest_version is None
    client.force_login(alice)
    assert b"Pasta helper" not in client.get("/").content
    for url in ("/workflows/pasta-helper/", "/workflows/pasta-helper/edit/", "/workflows/pasta-helper/versions/"):
        assert client.get(url).status_code == 404, url
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='run').secret}")
    assert api.get("/api/v1/workflows/pasta-helper").status_code == 404
    assert "pasta-helper" not in api.get("/api/v1/workflows").content.decode()
    assert api.get("/api/v1/authoring/workflows/pasta-helper/versions").status_code == 404


def test_a_student_can_never_run_a_draft_nor_anyone_in_full(olga, alice):
    draft = draft_of(GOOD, olga)
    inputs = {"topic": "penne"}
    with pytest.raises(services.RunRefused, match="draft"):
        services.start_run(workflow_version=draft, user=alice, inputs=inputs, mode=Mode.TEST)
    with pytest.raises(services.RunRefused, match="publish it before a full run"):
        services.start_run(workflow_version=draft, user=olga, inputs=inputs, mode=Mode.FULL, skip_progression=True)
    run = services.start_run(workflow_version=draft, user=olga, inputs=inputs, mode=Mode.TEST, queue=False)
    assert run.workflow_version_id == draft.pk


def test_the_cli_does_not_run_or_name_a_draft(olga):
    draft_of(GOOD, olga)
    with pytest.raises(CommandError) as refused:
        call_command("runworkflow", "pasta-helper", "--mode", "test", stdout=StringIO(), stderr=StringIO())
    assert refused.value.returncode == 2 and Run.objects.count() == 0
    assert "Known workflows: none" in str(refused.value)  # the draft's name is not given away


def test_publish_versions_diff_and_rollback(olga):
    first = draft_of(GOOD, olga)
    authoring.publish(version=first, user=olga)
    workflow = Workflow.objects.get(slug="pasta-helper")
    assert workflow.latest_version == first and workflow.title == "Pasta helper"
    second = draft_of(GOOD.replace("Pasta helper", "Pasta helper two"), olga, workflow)
    assert second.number == 2 and Workflow.objects.get(pk=workflow.pk).latest_version == first  # drafts wait
    authoring.publish(version=second, user=olga)
    lines = authoring.diff(first, second)
    assert [(line.kind, line.text) for line in lines if line.kind in ("add", "del")] == [
        ("del", "-title: Pasta helper"),
        ("add", "+title: Pasta helper two"),
    ]
    authoring.rollback(workflow=workflow, number=1, user=olga)
    workflow.refresh_from_db()
    assert workflow.latest_version == first and workflow.title == "Pasta helper"
    actions = list(AuditEvent.objects.filter(target_type="catalog.Workflow").values_list("action", flat=True))
    assert sorted(actions) == sorted(
        [
            AuditAction.DRAFTED,
            AuditAction.PUBLISHED,
            AuditAction.DRAFTED,
            AuditAction.PUBLISHED,
            AuditAction.ROLLED_BACK,
        ]
    )


def test_a_draft_a_run_used_is_kept_as_it_ran_and_the_next_save_starts_a_new_one(olga):
    draft = draft_of(GOOD, olga)
    services.start_run(workflow_version=draft, user=olga, inputs={"topic": "penne"}, mode=Mode.TEST, queue=False)
    again = draft_of(GOOD.replace("Pasta helper", "Pasta helper v2"), olga, draft.workflow)
    assert again.pk != draft.pk and again.number == 2
    draft.refresh_from_db()
    assert draft.spec["title"] == "Pasta helper"
    unused = draft_of(GOOD.replace("Pasta helper", "Pasta helper v3"), olga, draft.workflow)
    assert unused.pk == again.pk  # no run used it: saved over


def test_saving_another_workflows_id_or_a_taken_id_is_refused(olga, catalog):
    with pytest.raises(authoring.AuthoringError, match="taken"):
        draft_of(GOOD.replace("id: pasta-helper", "id: learn-agentic-ai"), olga)
    mine = draft_of(GOOD, olga)
    with pytest.raises(authoring.AuthoringError, match="must stay 'pasta-helper'"):
        draft_of(GOOD.replace("id: pasta-helper", "id: other"), olga, mine.workflow)
    with pytest.raises(authoring.AuthoringError, match="no skill named 'nope'"):
        draft_of(GOOD.replace("skills: []", "skills: [nope]"), olga, mine.workflow)


def test_sync_never_replaces_an_operators_published_version_and_says_so(olga, tmp_path: Path, settings):
    folder = tmp_path / "workflows"
    folder.mkdir()
    spec_file = folder / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(MINIMAL_SPEC, sort_keys=False))
    sync_workflows(workflows_dir=folder)
    workflow = Workflow.objects.get(slug="tiny")
    edited = draft_of(
        authoring.source_of(workflow.latest_version).replace("Tiny workflow", "Tiny, edited"), olga, workflow
    )
    authoring.publish(version=edited, user=olga)
    unchanged = sync_workflows(workflows_dir=folder)
    workflow.refresh_from_db()
    assert workflow.latest_version == edited and unchanged.unchanged == ["tiny"]
    spec_file.write_text(yaml.safe_dump({**MINIMAL_SPEC, "title": "Tiny from the file"}, sort_keys=False))
    out = StringIO()
    call_command("sync_workflows", "--workflows-dir", str(folder), "--skills-dir", str(tmp_path / "none"), stdout=out)
    workflow.refresh_from_db()
    assert workflow.latest_version == edited
    from_file = workflow.versions.get(number=3)
    assert from_file.status == VersionStatus.DRAFT and from_file.spec["title"] == "Tiny from the file"
    assert "Kept: tiny: the file's new content is draft version 3" in out.getvalue()


def test_the_editor_checks_as_you_type_and_previews_the_form(client, olga):
    client.force_login(olga)
    bad = client.post("/workflows/check/", {"source": GOOD.replace("maxLength: 50", "maxLength: fifty")})
    assert b"inputs.properties.topic.maxLength" in bad.content and b'data-line="' in bad.content
    assert b"form-preview" not in bad.content
    good = client.post("/workflows/check/", {"source": GOOD})
    assert b"The spec is valid" in good.content and b'name="preview-topic"' in good.content


def test_the_editor_saves_publishes_and_a_student_then_runs_it(client, olga, alice):
    client.force_login(olga)
    refused = client.post("/workflows/new/", {"source": GOOD.replace("maxLength: 50", "maxLength: fifty")})
    assert refused.status_code == 422 and Workflow.objects.count() == 0
    assert client.post("/workflows/new/", {"source": GOOD}).url == "/workflows/pasta-helper/edit/"
    assert client.post("/workflows/pasta-helper/versions/1/publish/").status_code == 302
    client.force_login(alice)
    page = client.get("/workflows/pasta-helper/")
    assert page.status_code == 200 and b"Pasta helper" in page.content


def test_new_workflow_from_a_skill_starts_from_a_valid_spec(client, olga, catalog):
    client.force_login(olga)
    page = client.get("/workflows/new/?skill=learn-agentic-ai")
    assert b"id: apply-learn-agentic-ai" in page.content and b"The spec is valid" in page.content


def test_the_api_cycle_with_an_operator_token_and_422_with_lines(olga):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=olga, name='t', scope='run').secret}")
    post = lambda path, body=None: api.post(path, body or {}, content_type="application/json")  # noqa: E731
    bad = post("/api/v1/authoring/workflows", {"yaml": GOOD.replace("maxLength: 50", "maxLength: fifty")})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_spec"
    (problem,) = bad.json()["problems"]
    assert problem["field"] == "inputs.properties.topic.maxLength" and problem["line"] > 1
    created = post("/api/v1/authoring/workflows", {"yaml": GOOD})
    assert created.status_code == 201 and created.json()["status"] == "draft"
    assert post("/api/v1/authoring/workflows/pasta-helper/versions/1/publish").json()["current"] is True
    spec = {**yaml.safe_load(GOOD), "title": "Pasta helper two"}
    second = api.put("/api/v1/authoring/workflows/pasta-helper/draft", {"spec": spec}, content_type="application/json")
    assert second.status_code == 200 and second.json()["number"] == 2
    assert post("/api/v1/authoring/workflows/pasta-helper/versions/2/publish").json()["current"] is True
    diff = api.get("/api/v1/authoring/workflows/pasta-helper/diff?from_version=1&to_version=2").json()
    assert {"kind": "add", "text": "+title: Pasta helper two"} in diff["lines"]
    back = post("/api/v1/authoring/workflows/pasta-helper/versions/1/rollback")
    assert back.status_code == 200 and back.json()["current"] is True
    versions = api.get("/api/v1/authoring/workflows/pasta-helper/versions").json()
    assert [(v["number"], v["current"]) for v in versions] == [(2, False), (1, True)]


def test_a_read_token_cannot_write_workflows(olga):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=olga, name='t', scope='read').secret}")
    refused = api.post("/api/v1/authoring/workflows", {"yaml": GOOD}, content_type="application/json")
    assert refused.status_code == 403 and Workflow.objects.count() == 0
