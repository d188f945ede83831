"""The student journey in a real browser (Playwright driving the system Chromium) against a live server and
a real qcluster, with axe-core checks on every page and a keyboard-only pass."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from catalog.services import sync_workflows
from providers import services as provider_services
from runs.models import Run, Status

from .factories import UserFactory
from .support.fake_llm import fake_llm
from .support.processes import start_qcluster, stop

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed (apt-get install chromium): browser tests cannot be skipped in CI")
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls these tests make stay synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield chromium
        finally:
            chromium.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def site(live_server, tmp_path) -> Iterator[str]:
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    UserFactory(username="olivia", is_staff=True, is_superuser=True)  # an operator
    UserFactory(username="sam")  # a student
    cluster = start_qcluster(tmp_path / "qcluster.log")
    try:
        yield live_server.url
    finally:
        stop(cluster)


@pytest.fixture
def page(browser, site):
    context = browser.new_context(base_url=site, accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def check_accessibility(page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation. Saves a screenshot too."""
    from axe_playwright_python.sync_playwright import Axe

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    report = "\n".join(f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}" for v in bad)
    assert not bad, f"accessibility violations on {name}:\n{report}"


def log_in(page, username: str) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Workflows").wait_for()


def wait_for_status(page, text: str) -> None:
    page.locator("#status-title").get_by_text(text, exact=True).wait_for(timeout=30000)


def test_the_student_journey_in_a_real_browser(page, site):
    from playwright.sync_api import expect

    page.goto("/login/")
    check_accessibility(page, "01-login")
    log_in(page, "olivia")

    # An operator connects the offline provider and tests the connection (HTMX swaps the row).
    page.get_by_role("link", name="Providers").click()
    check_accessibility(page, "02-providers")
    page.get_by_label("Provider").select_option("offline")
    page.get_by_label("Label").fill("Offline demo")
    page.get_by_label("Default model").fill("offline/demo")
    page.get_by_role("button", name="Save connection").click()
    page.get_by_role("button", name="Test connection Offline demo").click()
    expect(page.get_by_text("Connected to Offline demo model (not AI).").first).to_be_visible()

    # Browse and search the catalog: results update as one types.
    page.get_by_role("link", name="Catalog").click()
    check_accessibility(page, "03-catalog")
    page.get_by_label("Search").fill("agent")
    expect(page.locator("#result-count")).to_contain_text("matching “agent”")
    page.get_by_role("link", name="Learn Agentic AI").click()
    check_accessibility(page, "04-workflow")

    # Bad input: the error is beside the field and no run is made.
    page.get_by_label("Study time (minutes)").fill("5")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#id_session_minutes_error")).to_contain_text("at least 10")
    check_accessibility(page, "05-workflow-errors")
    assert Run.objects.count() == 0

    # Validate, then a test run whose page updates itself until it ends.
    page.get_by_label("Study time (minutes)").fill("30")
    page.get_by_label("Topic").fill("Tool use for agents")
    page.get_by_label("Planning").check()
    page.get_by_role("button", name="Validate").click()
    wait_for_status(page, "Succeeded")
    expect(page.get_by_text("Validation passed with offline/demo")).to_be_visible()
    page.go_back()
    page.get_by_label("Study time (minutes)").fill("30")
    page.get_by_label("Topic").fill("Tool use for agents")
    page.get_by_label("Planning").check()
    page.get_by_role("button", name="Test run").click()
    wait_for_status(page, "Succeeded")
    expect(page.locator("#run-announcer")).to_contain_text("Run succeeded")
    expect(page.get_by_role("heading", name="Learn Agentic AI: Tool use for agents")).to_be_visible()
    check_accessibility(page, "06-run-results")
    page.get_by_text("Outline from the skill's references — done").click()
    expect(page.locator("details.step code", has_text="read_reference").first).to_be_visible()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download notes.md").click()
    notes = Path(download_info.value.path()).read_text()
    assert notes.startswith("# Learn Agentic AI: Tool use for agents")

    # The full run unlocks from the passed test run.
    page.get_by_role("button", name="Run full with these inputs").click()
    wait_for_status(page, "Succeeded")
    expect(page.get_by_role("heading", name="Learn Agentic AI: full run")).to_be_visible()

    for name, link in (("07-history", "My runs"), ("08-usage", "Usage")):
        page.get_by_role("link", name=link).click()
        check_accessibility(page, name)
    page.goto("/no-such-page/")
    check_accessibility(page, "09-not-found")


def test_cancel_from_the_run_page_stops_a_slow_run(page, site):
    from playwright.sync_api import expect

    with fake_llm("openai") as slow:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Slow", api_key="sk-browser-0123456789abcdefghij",
            api_base=slow.base_url, allow_private_network=True,
        )  # fmt: skip
        slow.push({}, {"delay": 4}, {"delay": 4})
        log_in(page, "sam")
        page.goto("/workflows/learn-agentic-ai/")
        page.get_by_role("button", name="Test run").click()
        expect(page.locator("#progress-label")).to_contain_text("now: Outline", timeout=20000)
        check_accessibility(page, "10-run-in-progress")
        page.get_by_role("button", name="Cancel run").click()
        wait_for_status(page, "Cancelled")
        assert Run.objects.get().status == Status.CANCELLED
        expect(page.get_by_role("button", name="Resume")).to_be_enabled()


def test_the_main_journey_works_with_the_keyboard_alone(page, site):
    def tab_to(locator, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if locator.evaluate("el => el === document.activeElement"):
                return
        raise AssertionError(f"Tab never reached {locator}")

    page.goto("/login/")
    assert page.evaluate("document.activeElement.id") == "id_username"  # the login form starts focused
    page.keyboard.type("sam")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Workflows").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    tab_to(page.get_by_role("link", name="Learn Agentic AI"))
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused link has no visible focus indicator"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Inputs").wait_for()
    tab_to(page.get_by_role("button", name="Test run"))
    page.keyboard.press("Enter")
    wait_for_status(page, "Succeeded")
    tab_to(page.get_by_role("link", name="Download notes.md"))
    with page.expect_download() as download_info:
        page.keyboard.press("Enter")
    assert Path(download_info.value.path()).read_text().startswith("# Learn Agentic AI")
