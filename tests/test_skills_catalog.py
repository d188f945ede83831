"""Importing real Agent Skills, and a catalog of workflows over them."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from catalog.models import Skill, Workflow
from catalog.services import import_skills
from catalog.specs import load_specs
from runs.models import Run

from .conftest import SHARED_SKILLS

pytestmark = pytest.mark.django_db
SPECS = sorted(s.id for s in load_specs(settings.WORKFLOWS_DIR))


def write_skill(root, folder: str, description: str = "Does a thing.", body: str = "# Body") -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "SKILL.md").write_text(f"---\nname: {folder}\ndescription: {description}\n---\n{body}\n")


def test_the_catalog_ships_twenty_workflows_for_five_personas():
    specs = load_specs(settings.WORKFLOWS_DIR)
    assert len(specs) >= 20
    personas = {p for s in specs for p in s.spec["personas"]}
    assert personas == {"student", "researcher", "ml-engineer", "educator", "tech-lead"}
    for persona in personas:
        assert sum(persona in s.spec["personas"] for s in specs) >= 3, persona


@pytest.mark.parametrize("workflow", SPECS)
def test_every_shipped_workflow_passes_a_test_run_on_the_offline_model(catalog, workflow):
    out = StringIO()
    call_command("runworkflow", workflow, "--mode", "test", "--json", stdout=out, stderr=StringIO())
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["status"] == "succeeded", result["reason"]
    assert result["model"] == "offline/demo"
    assert any(a["name"].endswith(".md") for a in result["artifacts"])


def test_import_is_idempotent_keeps_old_versions_and_skips_only_the_unusable(tmp_path):
    write_skill(tmp_path, "alpha")
    write_skill(tmp_path, "beta")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "SKILL.md").write_text("no front matter here")
    first = import_skills(tmp_path)
    assert (first.found, sorted(first.imported), len(first.skipped)) == (3, ["alpha", "beta"], 1)
    assert "broken/SKILL.md: no YAML front matter" in first.skipped[0]
    again = import_skills(tmp_path)
    assert sorted(again.unchanged) == ["alpha", "beta"] and not again.imported
    write_skill(tmp_path, "alpha", body="# Changed body")
    third = import_skills(tmp_path)
    assert third.updated == ["alpha"]
    alpha = Skill.objects.get(name="alpha")
    assert alpha.versions.count() == 2 and alpha.latest.body == "# Changed body"


def test_the_import_command_prints_a_summary(tmp_path):
    write_skill(tmp_path, "gamma")
    out = StringIO()
    call_command("import_skills", str(tmp_path), stdout=out)
    assert out.getvalue() == "imported   gamma\n1 skills found: 1 imported, 0 updated, 0 unchanged, 0 skipped.\n"


@pytest.mark.skipif(not SHARED_SKILLS.is_dir(), reason="the shared skill library is not beside the project")
def test_the_public_ai_research_skills_library_imports_whole():
    out = StringIO()
    call_command("import_skills", str(SHARED_SKILLS), stdout=out)
    assert out.getvalue().endswith("98 skills found: 98 imported, 0 updated, 0 unchanged, 0 skipped.\n")
    assert Skill.objects.count() == 98
    call_command("import_skills", str(SHARED_SKILLS), stdout=(again := StringIO()))
    assert again.getvalue().endswith("98 skills found: 0 imported, 0 updated, 98 unchanged, 0 skipped.\n")


def test_a_template_workflow_runs_over_an_imported_skill_and_reads_its_references(catalog, tmp_path):
    # Enough of a skill for a study guide the workflow's checks accept (its length), even from the offline model.
    body = "## Shielding\nLead stops them." + "".join(
        f"\n\n## {topic}\n{topic} is a part of working safely with gamma sources that a beginner studies before "
        "handling any source in a laboratory."
        for topic in ("Half-life", "Dose", "Detectors", "Storage", "Emergencies")
    )
    write_skill(tmp_path, "gamma", description="Gamma rays for beginners.", body=body)
    (tmp_path / "gamma" / "references").mkdir()
    (tmp_path / "gamma" / "references" / "safety.md").write_text("## Distance\nStay far away.")
    import_skills(tmp_path)
    out = StringIO()
    call_command("runworkflow", "skill-study-guide", "--input", "skill=gamma", "--json", stdout=out, stderr=StringIO())
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["status"] == "succeeded", result["reason"]
    trace_path = next(a["path"] for a in result["artifacts"] if a["name"] == "trace.json")
    trace = json.loads(Path(trace_path).read_text())
    reads = [
        t["result"]
        for s in trace["steps"]
        for c in s["calls"]
        for t in c.get("tool_calls", [])
        if t["name"] == "read_reference"
    ]
    calls = [t for s in trace["steps"] for c in s["calls"] for t in c.get("tool_calls", [])]
    assert reads == [{"skill": "gamma", "path": "references/safety.md", "section": None, "chars": 26}], calls


def test_a_template_workflow_refuses_a_skill_that_does_not_exist(catalog):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match=r"skill: Choose one of the imported skills\."):
        call_command("runworkflow", "skill-quiz", "--input", "skill=nope", stdout=StringIO(), stderr=StringIO())
    assert not Run.objects.exists()


def test_a_skill_page_lists_its_workflows_and_presets_the_template_form(alice_client, catalog):
    page = alice_client.get(reverse("catalog:skill", args=["learn-agentic-ai"])).content.decode()
    assert 'href="/workflows/learn-agentic-ai/"' in page
    assert 'href="/workflows/skill-quiz/?skill=learn-agentic-ai"' in page
    assert '<span class="folder">references/</span>' in page and "<code>agent-loop.md</code>" in page
    form = alice_client.get("/workflows/skill-quiz/?skill=learn-agentic-ai").content.decode()
    assert '<option value="learn-agentic-ai" selected>' in form


def test_the_catalog_lists_every_shipped_workflow(alice_client, catalog):
    page = alice_client.get(reverse("catalog:index")).content.decode()
    assert page.count('class="card"') == Workflow.objects.filter(enabled=True).count() == len(SPECS)


def test_a_pinned_version_is_what_new_runs_use(catalog, tmp_path):
    first = catalog.latest_version
    Workflow.objects.filter(pk=catalog.pk).update(pinned_version=first)
    from catalog.models import WorkflowVersion

    newer = WorkflowVersion.objects.create(
        workflow=catalog, number=2, version="2.0.0", spec=first.spec, spec_hash="x" * 64
    )
    Workflow.objects.filter(pk=catalog.pk).update(latest_version=newer)
    call_command("runworkflow", "learn-agentic-ai", stdout=StringIO(), stderr=StringIO())
    assert Run.objects.get().workflow_version == first


def test_the_admin_shows_what_changed_between_versions(admin_client, catalog):
    from catalog.models import WorkflowVersion

    first = catalog.latest_version
    spec = {**first.spec, "title": "Learn Agentic AI, revised"}
    second = WorkflowVersion.objects.create(workflow=catalog, number=2, version="1.1.0", spec=spec, spec_hash="y" * 64)
    page = admin_client.get(reverse("admin:catalog_workflowversion_change", args=[second.pk])).content.decode()
    assert "-title: Learn Agentic AI" in page and "+title: Learn Agentic AI, revised" in page
