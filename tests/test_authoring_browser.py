"""The authoring journey in a real browser: an operator writes a workflow with a deliberate error, sees it at
its line, fixes it by keyboard, watches the form preview, test-runs the draft on a real cluster, publishes;
a student runs it; version 2, the diff, the rollback. Every page is checked with axe at two widths."""

from __future__ import annotations

import json

import pytest
import yaml

from catalog.models import Workflow
from runs.models import Run, Status

from .factories import MINIMAL_SPEC
from .test_browser import DESKTOP, browser, check_page, log_in, page, site, wait_for_status  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SPEC = yaml.safe_dump({**MINIMAL_SPEC, "id": "pasta-helper", "title": "Pasta helper"}, sort_keys=False)
BROKEN = SPEC.replace("maxLength: 50", "maxLength: fifty")
VERSION_1 = SPEC.replace("title: Topic", "title: Pasta shape")


def set_editor_text(page, text: str) -> None:  # noqa: F811
    """What a paste does: the whole text replaced through CodeMirror (which then fires the live check)."""
    page.evaluate(f"document.querySelector('.CodeMirror').CodeMirror.setValue({json.dumps(text)})")


def test_an_operator_writes_tests_publishes_versions_and_rolls_back_a_workflow(page, browser, site):  # noqa: F811
    from playwright.sync_api import expect

    log_in(page, "olivia")
    page.goto("/workflows/new/")
    set_editor_text(page, BROKEN)
    problem = page.locator("#editor-check .problem")
    expect(problem).to_contain_text("inputs.properties.topic.maxLength")
    line = BROKEN.splitlines().index("      maxLength: fifty") + 1
    expect(problem.get_by_role("button", name=f"Line {line}")).to_be_visible()
    expect(page.locator(".cm-problem-line")).to_have_count(1)  # the line is marked in the editor too
    expect(page.locator("#form-preview")).to_have_count(0)
    check_page(page, "authoring-01-error")

    # Fix it by keyboard: the problem's button puts the cursor on its line.
    problem.get_by_role("button", name=f"Line {line}").click()
    page.keyboard.press("End")
    for _ in "fifty":
        page.keyboard.press("Backspace")
    page.keyboard.type("50")
    expect(page.locator("#editor-summary")).to_contain_text("The spec is valid")
    expect(page.locator("#form-preview").get_by_label("Topic")).to_be_visible()
    set_editor_text(page, VERSION_1)
    expect(page.locator("#form-preview").get_by_label("Pasta shape")).to_be_visible()
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#editor-state")).to_contain_text("Editing draft version 1")
    check_page(page, "authoring-02-draft")

    page.get_by_role("button", name="Test-run draft").click()
    wait_for_status(page, "Succeeded")
    run = Run.objects.get()
    assert run.workflow_version.is_draft and run.status == Status.SUCCEEDED
    page.goto("/workflows/pasta-helper/edit/")
    page.get_by_role("button", name="Publish version 1").click()
    expect(page.locator("tr.current")).to_contain_text("Current")
    check_page(page, "authoring-03-versions")

    # A student sees and runs it.
    student = browser.new_context(base_url=site, viewport=DESKTOP).new_page()
    student.set_default_timeout(20000)
    log_in(student, "sam")
    student.get_by_role("link", name="Pasta helper").click()
    student.get_by_label("Pasta shape").fill("penne")
    student.get_by_role("button", name="Test run").click()
    wait_for_status(student, "Succeeded")

    # Version 2, the diff, and the rollback.
    page.goto("/workflows/pasta-helper/edit/")
    set_editor_text(page, VERSION_1.replace("title: Pasta helper", "title: Pasta helper two"))
    expect(page.locator("#editor-summary")).to_contain_text("The spec is valid")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("button", name="Publish version 2").click()
    assert Workflow.objects.get(slug="pasta-helper").title == "Pasta helper two"
    page.get_by_label("From").select_option("1")
    page.get_by_label("To").select_option("2")
    page.get_by_role("button", name="Show the differences").click()
    expect(page.locator(".diff-add")).to_have_text("added: +title: Pasta helper two")
    check_page(page, "authoring-04-diff")
    page.go_back()
    page.get_by_role("button", name="Roll back to version 1").click()
    expect(page.locator("tr.current th")).to_contain_text("1")
    assert Workflow.objects.get(slug="pasta-helper").title == "Pasta helper"
    student.goto("/")
    expect(student.get_by_role("link", name="Pasta helper", exact=True)).to_be_visible()
