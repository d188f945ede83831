"""Start-up friction: a broken workflow file warns and is listed for operators; the admin is branded."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

from catalog.models import Workflow

from .factories import UserFactory, minimal_spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder_with_a_broken_file(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(minimal_spec()), encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("id: broken\\ntitle: [unclosed\\n", encoding="utf-8")
    return tmp_path


def test_sync_workflows_loads_the_good_files_and_warns_one_line_per_broken_file(folder_with_a_broken_file):
    out, err = io.StringIO(), io.StringIO()
    call_command("sync_workflows", workflows_dir=str(folder_with_a_broken_file), stdout=out, stderr=err)
    assert Workflow.objects.filter(slug="tiny").exists()
    assert "1 new" in out.getvalue() and "1 file(s) set aside" in out.getvalue()
    warnings = err.getvalue().strip().splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith("WARNING:") and "broken.yaml: line" in warnings[0] and "not valid YAML" in warnings[0]


def test_operators_see_the_broken_file_and_its_error_in_the_admin(client, folder_with_a_broken_file):
    call_command(
        "sync_workflows", workflows_dir=str(folder_with_a_broken_file), stdout=io.StringIO(), stderr=io.StringIO()
    )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:catalog_workflowfileproblem_changelist")).content.decode()
    assert "broken.yaml" in page and "not valid YAML" in page
    index = client.get(reverse("admin:index")).content.decode()
    assert "Workflow file problems" in index and "LLM cache entries" in index
    assert "Agentic Workflow Platform · operators" in index


def test_list_editable_fields_in_the_admin_have_a_label_naming_their_row(client, catalog):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:catalog_workflow_changelist")).content.decode()
    assert 'aria-label="Enabled: Learn Agentic AI"' in page
    personas = client.get(reverse("admin:catalog_persona_changelist")).content.decode()
    assert 'aria-label="Position: Student"' in personas
