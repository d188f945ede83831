"""Every shipped workflow has quality checks that the offline demo model passes and a poor answer fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from catalog.models import Workflow
from runs import pipeline, services
from runs.models import Mode, Status

pytestmark = pytest.mark.django_db
SHIPPED = sorted(p.stem for p in Path(settings.WORKFLOWS_DIR).glob("*.yaml"))
POOR = "## Notes - point one - point two"


# apply-skill's real output is the files its code makes; its notes only report them (no sections to require).
REPORTS = {"apply-skill"}


def test_every_shipped_workflow_has_checks_of_its_own():
    assert len(SHIPPED) == 22
    from catalog.specs import load_specs

    for loaded in load_specs(Path(settings.WORKFLOWS_DIR)):
        kinds = {c["kind"] for c in loaded.spec.get("checks", [])}
        needed = {"length", "patterns"} if loaded.id in REPORTS else {"sections", "length", "references"}
        assert needed <= kinds, loaded.id


@pytest.mark.parametrize("slug", SHIPPED)
def test_the_offline_model_passes_every_shipped_workflows_checks(catalog, alice, slug):
    version = Workflow.objects.get(slug=slug).latest_version
    run = services.start_run(workflow_version=version, user=alice, inputs={}, mode=Mode.TEST, queue=False)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    assert run.checks_passed is True
    assert [c["passed"] for c in run.check_results] == [True] * len(run.check_results)
    trace = json.loads(run.artifacts.get(name="trace.json").file.read())
    assert [c["name"] for c in trace["checks"]] == [c["name"] for c in run.check_results]
