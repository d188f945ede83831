from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings

from catalog.models import Workflow, WorkflowFileProblem, WorkflowVersion
from catalog.services import sync_workflows
from catalog.specs import SpecError, load_spec, load_specs

from .factories import minimal_spec

pytestmark = pytest.mark.django_db


def write(folder: Path, spec: dict, name: str | None = None) -> Path:
    path = folder / f"{name or spec['id']}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_every_shipped_spec_is_valid():
    specs = load_specs(settings.WORKFLOWS_DIR)
    assert "learn-agentic-ai" in {s.id for s in specs}


def test_it_names_the_file_and_the_field_of_a_bad_spec(tmp_path):
    spec = minimal_spec()
    del spec["steps"][0]["prompt"]
    path = write(tmp_path, spec)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert "steps[0]" in str(err.value)
    assert "'prompt' is a required property" in str(err.value)


def test_it_refuses_a_default_that_breaks_its_own_schema(tmp_path):
    spec = minimal_spec()
    spec["inputs"]["properties"]["count"]["default"] = 99
    with pytest.raises(SpecError, match=r"inputs\.properties\.count\.default"):
        load_spec(write(tmp_path, spec))


def test_it_refuses_a_template_with_a_syntax_error(tmp_path):
    spec = minimal_spec()
    spec["steps"][0]["prompt"] = "Explain {{ inputs.topic "
    with pytest.raises(SpecError, match=r"steps\[0\]\.prompt: template syntax error"):
        load_spec(write(tmp_path, spec))


def test_it_refuses_yaml_that_does_not_parse(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("id: tiny\nsteps: [unclosed\n", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_it_requires_the_file_name_to_match_the_id(tmp_path):
    with pytest.raises(SpecError, match="must match the file name"):
        load_spec(write(tmp_path, minimal_spec(), name="other"))


def test_a_broken_spec_is_set_aside_with_its_error_and_the_good_ones_load(tmp_path):
    write(tmp_path, minimal_spec())
    broken = minimal_spec(id="broken")
    broken["caps"]["test"]["budget_usd"] = -1
    write(tmp_path, broken)
    report = sync_workflows(workflows_dir=tmp_path)
    assert report.created == ["tiny"]
    assert len(report.problems) == 1 and "broken.yaml: caps.test.budget_usd" in report.problems[0]
    problem = WorkflowFileProblem.objects.get()
    assert problem.path.endswith("broken.yaml") and "budget_usd" in problem.error
    assert not Workflow.objects.filter(slug="broken").exists()
    (tmp_path / "broken.yaml").unlink()
    sync_workflows(workflows_dir=tmp_path)
    assert not WorkflowFileProblem.objects.exists()  # fixed files leave the list


def test_a_changed_spec_makes_a_new_version_and_old_versions_stay(tmp_path):
    path = write(tmp_path, minimal_spec())
    first = sync_workflows(workflows_dir=tmp_path)
    assert first.created == ["tiny"]
    again = sync_workflows(workflows_dir=tmp_path)
    assert again.unchanged == ["tiny"]
    changed = minimal_spec(version="1.1.0", title="Tiny, improved")
    path.write_text(yaml.safe_dump(changed), encoding="utf-8")
    report = sync_workflows(workflows_dir=tmp_path)
    assert report.updated == ["tiny"]
    workflow = Workflow.objects.get(slug="tiny")
    assert list(workflow.versions.order_by("number").values_list("number", "version")) == [(1, "1.0.0"), (2, "1.1.0")]
    assert workflow.latest_version == WorkflowVersion.objects.get(workflow=workflow, number=2)
    assert workflow.title == "Tiny, improved"


def test_it_refuses_a_spec_naming_a_skill_that_does_not_exist(tmp_path):
    write(tmp_path, minimal_spec(skills=["no-such-skill"]))
    report = sync_workflows(workflows_dir=tmp_path)
    assert "no skill named no-such-skill" in report.problems[0] and not report.created


def test_the_shipped_catalog_loads_with_its_skill(catalog):
    version = catalog.latest_version
    assert [sv.skill.name for sv in version.skills.all()] == ["learn-agentic-ai"]
    assert len(version.spec["steps"]) >= 2
    assert any(step.get("tools") for step in version.spec["steps"])
    assert all("default" in prop for prop in version.input_schema["properties"].values())


def test_personas_are_managed_by_operators_and_specs_must_name_known_ones(tmp_path):
    from catalog.models import Persona

    write(tmp_path, minimal_spec(personas=["astronaut"]))
    assert "no persona astronaut" in sync_workflows(workflows_dir=tmp_path).problems[0]
    assert Persona.objects.count() == 5  # the defaults exist once the catalog is loaded
    Persona.objects.create(slug="astronaut", name="Astronaut")
    assert sync_workflows(workflows_dir=tmp_path).created == ["tiny"]
