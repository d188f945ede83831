"""Applying a skill in a real browser (issue 25): from the skill's page, upload a CSV on the form, a real
qcluster runs the skill's script in the sandbox, and the run page lists the file given and the workbook made;
axe-clean at every step, no sideways scrolling."""

from __future__ import annotations

import io
import zipfile

import pytest

from catalog.services import import_skills
from runs.models import Run, Status

from .sandbox_support import needs_sandbox
from .test_apply_skill import CSV, TEST_SKILLS
from .test_browser import browser, check_page, log_in, page, site

__all__ = ["browser", "needs_sandbox", "page", "site"]
pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("needs_sandbox")
def test_a_student_applies_a_skill_to_an_uploaded_csv_and_downloads_the_workbook(page, tmp_path):
    from playwright.sync_api import expect

    import_skills(TEST_SKILLS, library="test-skills")
    data = tmp_path / "data.csv"
    data.write_text(CSV)
    log_in(page, "sam")
    page.goto("/skills/xlsx-report/")
    check_page(page, "apply-01-skill")
    page.get_by_role("link", name="Apply this skill").click()
    expect(page.get_by_label("Skill")).to_have_value("xlsx-report")
    page.get_by_label("Task").fill("Make a workbook with a summary of my data")
    page.get_by_label("Files").set_input_files(str(data))
    check_page(page, "apply-02-form")
    page.get_by_role("button", name="Test run").click()
    # The worker's first LiteLLM import and the script's first pandas import take long on a loaded machine.
    page.locator("#status-title").get_by_text("Succeeded", exact=True).wait_for(timeout=150_000)
    run = Run.objects.get()
    assert run.status == Status.SUCCEEDED and run.files.get().name == "data.csv"
    expect(page.get_by_role("heading", name="Files given")).to_be_visible()
    expect(page.get_by_role("link", name="Download report.xlsx")).to_be_visible()
    expect(page.locator(".notes")).to_contain_text("/outputs/report.xlsx")
    check_page(page, "apply-03-run")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all as a zip").click()
    archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
    assert {"inputs/data.csv", "report.xlsx"} <= set(archive.namelist())
