"""The student and operator journeys in a real browser (Playwright driving the system Chromium) against a live
server and a real qcluster: axe-core on every page in every state, no sideways scrolling at 375 and 1280 px,
and the keyboard alone. One browser for the module; the live server is pytest-django's (one per session).

`UPDATE_SCREENSHOTS=1` also refreshes the README's screenshots in docs/screenshots/."""

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
README_SHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}

# Which elements stick out past the right edge: named in the failure message, so a regression is quick to find.
OVERFLOWING = """() => {
  const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
  return [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5 && !clipped(el))
    .slice(0, 6).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : ''));
}"""

# Text that a card or table cuts or pushes past its edge, which neither axe nor the sideways-scroll check sees
# (an estimate card's "≤ $0.015…" cut, "being counte / reload / mome", a table past its card). A text
# container is clipped when its content is wider than its box (scrollWidth > clientWidth) and it hides the
# rest, spills when a block's content is wider than the block, and is out when it ends past its card; a
# scrolling region (.table-scroll, <pre>) may hold wide content. A <select>'s chosen text must fit its box at
# desktop width (a phone opens the options in a full-width picker).
CLIPPED = """(checkSelects) => {
  const texty = 'td, th, dd, dt, p, li, a, label, button, summary, h1, h2, h3, select, span, code';
  const scrolls = (el, stop) => { for (let p = el.parentElement; p && p !== stop; p = p.parentElement) {
    const x = getComputedStyle(p).overflowX; if (x === 'auto' || x === 'scroll') return true; } return false; };
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' “' +
    (el.tagName === 'SELECT' ? (el.selectedOptions[0] || {}).text || '' : el.textContent || '').trim().slice(0, 40) + '”';
  const found = [];
  for (const box of document.querySelectorAll('.card, main table')) {
    const edge = box.getBoundingClientRect(), x = getComputedStyle(box).overflowX;
    const boxScrolls = x === 'auto' || x === 'scroll';  // a table that scrolls by itself holds wide rows
    for (const el of box.querySelectorAll(texty)) {
      if (el.closest('pre, .visually-hidden, details:not([open]) > :not(summary)') || scrolls(el, box)) continue;
      const r = el.getBoundingClientRect(), s = getComputedStyle(el);
      if (!r.width || !r.height || s.visibility === 'hidden' || s.position === 'absolute') continue;
      let why = '';
      if (el.tagName === 'SELECT') {
        if (!checkSelects) continue;
        const ctx = document.createElement('canvas').getContext('2d'); ctx.font = s.font;
        const text = el.selectedOptions[0] ? el.selectedOptions[0].text : '';
        if (ctx.measureText(text).width > el.clientWidth - 28) why = 'cut';
      } else if (s.display !== 'inline' && el.clientWidth && el.scrollWidth > el.clientWidth + 1) {
        why = s.overflowX === 'visible' ? 'spills out of its box' : 'clipped';
      }
      if (!why && !boxScrolls && (r.right > edge.right + 1 || r.left < edge.left - 1)) why = 'past its card';
      if (why) found.push(why + ': ' + name(el));
    }
  }
  return [...new Set(found)].slice(0, 8);
}"""


def clipped_text(page) -> list[str]:
    """What CLIPPED finds at the current width (an empty list when every text fits its card)."""
    return page.evaluate(CLIPPED, page.viewport_size["width"] >= DESKTOP["width"])


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
    from playwright.sync_api import expect

    expect.set_options(timeout=20000)  # a first LiteLLM import on this shared 2-core machine takes seconds
    context = browser.new_context(base_url=site, accept_downloads=True, viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def screenshot(page, name: str, *, readme: str = "") -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if readme and os.environ.get("UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(README_SHOTS / f"{readme}.png"), full_page=True)


def check_page(page, name: str, *, readme: str = "") -> None:
    """No sideways scrolling and no clipped text at phone and desktop widths, and not one axe-core violation."""
    from axe_playwright_python.sync_playwright import Axe

    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        extra = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert extra <= 0, f"{name} scrolls sideways by {extra}px at {size['width']}px: {page.evaluate(OVERFLOWING)}"
        cut = clipped_text(page)
        assert not cut, f"{name} cuts text at {size['width']}px: {cut}"
    screenshot(page, name, readme=readme)
    violations = Axe().run(page).response["violations"]
    report = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}" for v in violations
    )
    assert not violations, f"accessibility violations on {name}:\n{report}"


def log_in(page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Workflows").wait_for()


def wait_for_status(page, text: str) -> None:
    try:
        page.locator("#status-title").get_by_text(text, exact=True).wait_for(timeout=40000)
    except Exception:
        screenshot(page, f"failed-waiting-for-{text.lower()}")
        raise


def fill_learn_form(page) -> None:
    page.get_by_label("Study time (minutes)").fill("30")
    page.get_by_label("Topic").fill("Tool use for agents")
    page.get_by_label("Planning").check()


def test_the_student_and_operator_journey_in_a_real_browser(page, site):
    from playwright.sync_api import expect

    page.goto("/login/")
    check_page(page, "01-login")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#error-summary")).to_contain_text("enter a correct username and password")
    assert page.evaluate("document.activeElement.id") == "error-summary"  # focus starts at the problem
    check_page(page, "01-login-error")
    log_in(page, "olivia")

    # Empty states first: no runs yet, no provider.
    for name, link in (
        ("02-history-empty", "My runs"),
        ("02-usage-empty", "Usage"),
        ("02-providers-empty", "Providers"),
    ):
        page.get_by_role("link", name=link, exact=True).click()
        check_page(page, name)

    # An operator connects the offline provider (a message is shown) and tests it (HTMX swaps the row).
    page.get_by_label("Provider").select_option("offline")
    page.get_by_label("Label").fill("Offline demo")
    page.get_by_label("Default model").fill("offline/demo")
    page.get_by_role("button", name="Save connection").click()
    expect(page.locator(".messages")).to_contain_text("Connection saved")
    check_page(page, "03-providers-message")
    page.get_by_role("button", name="Test connection Offline demo").click()
    # (the first call imports LiteLLM in the web test server: slow on a busy machine)
    expect(page.get_by_text("Connected to Offline demo model (not AI).").first).to_be_visible(timeout=90000)
    page.get_by_role("link", name="Edit Offline demo").click()
    check_page(page, "03-provider-edit")

    # Browse and search the catalog: results update as one types.
    page.get_by_role("link", name="Catalog").click()
    check_page(page, "04-catalog")
    page.get_by_label("Search").fill("agent")
    expect(page.locator("#result-count")).to_contain_text("matching “agent”")
    page.get_by_role("link", name="Learn Agentic AI").click()
    check_page(page, "05-workflow")
    page.get_by_role("link", name="learn-agentic-ai").first.click()
    check_page(page, "05-skill")
    page.go_back()

    # Bad input: focus moves to the error summary, whose link leads to the field; no run is made.
    page.get_by_label("Study time (minutes)").fill("5")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#id_session_minutes_error")).to_contain_text("at least 10")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    check_page(page, "06-workflow-errors")
    assert Run.objects.count() == 0

    # Validate; its page offers the test run with the same inputs, whose page updates itself until it ends.
    fill_learn_form(page)
    page.get_by_role("button", name="Validate").click()
    wait_for_status(page, "Succeeded")
    expect(page.get_by_text("Validation passed with offline/demo")).to_be_visible()
    check_page(page, "07-validated")
    page.get_by_role("button", name="Test run with these inputs").click()
    wait_for_status(page, "Succeeded")
    expect(page.locator("#run-announcer")).to_contain_text("Run succeeded")
    expect(page.get_by_role("heading", name="Learn Agentic AI: Tool use for agents")).to_be_visible()
    page.get_by_text("Tool calls of “Outline from the skill's references”").click()
    expect(page.locator("#step-outline code", has_text="read_reference").first).to_be_visible()
    check_page(page, "08-run-results", readme="run-results")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download notes.md").click()
    assert Path(download_info.value.path()).read_text().startswith("# Learn Agentic AI: Tool use for agents")

    # The passed test run offers the full run.
    page.get_by_role("button", name="Run full with these inputs").click()
    wait_for_status(page, "Succeeded")
    expect(page.get_by_role("heading", name="Learn Agentic AI: full run")).to_be_visible()

    for name, link in (("09-history", "My runs"), ("09-usage", "Usage")):
        page.get_by_role("link", name=link, exact=True).click()
        check_page(page, name)
    page.goto("/no-such-page/")
    check_page(page, "10-not-found")

    # The admin pages we customise: branded, labelled list-editable fields.
    for name, url in (
        ("11-admin", "/admin/"),
        ("11-admin-workflows", "/admin/catalog/workflow/"),
        ("11-admin-personas", "/admin/catalog/persona/"),
        ("11-admin-file-problems", "/admin/catalog/workflowfileproblem/"),
    ):
        page.goto(url)
        check_page(page, name)
    expect(page.get_by_role("link", name="Agentic Workflow Platform · operators")).to_be_visible()


def test_cancel_by_keyboard_survives_live_updates_and_a_failed_step_shows_in_red(page, site):
    from playwright.sync_api import expect

    with fake_llm("openai") as slow:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Slow", api_key="sk-browser-0123456789abcdefghij",
            api_base=slow.base_url, allow_private_network=True,
        )  # fmt: skip
        slow.push({}, {"delay": 8}, {"delay": 8})  # the connection check, then two slow calls
        log_in(page, "sam")
        page.set_viewport_size(PHONE)
        page.goto("/workflows/learn-agentic-ai/")
        page.get_by_role("button", name="Test run").click()
        # The worker's first provider call (LiteLLM's import) can take long on a busy machine.
        expect(page.locator("#progress-label")).to_contain_text("now: Outline", timeout=60000)
        expect(page.locator("#step-outline")).to_contain_text("Running")
        check_page(page, "12-run-in-progress", readme="run-in-progress")
        page.set_viewport_size(PHONE)
        screenshot(page, "12-run-in-progress-phone", readme="run-in-progress-phone")

        # Keyboard only: Tab to Cancel, let at least three live updates land, focus and scroll stay put.
        page.evaluate("window.updates = 0; document.body.addEventListener('htmx:afterSettle', () => window.updates++)")
        cancel = page.get_by_role("button", name="Cancel run")
        for _ in range(40):
            page.keyboard.press("Tab")
            if cancel.evaluate("el => el === document.activeElement"):
                break
        else:
            raise AssertionError("Tab never reached Cancel")
        scrolled = page.evaluate("window.scrollY")
        for _ in range(100):  # polled from here: the page's CSP (script-src 'self') forbids wait_for_function
            if page.evaluate("window.updates") >= 3:
                break
            page.wait_for_timeout(200)
        assert page.evaluate("window.updates") >= 3, "fewer than three live updates arrived"
        focused = page.evaluate("document.activeElement.textContent.trim()")
        assert focused == "Cancel run", f"an update took the focus away (now on {focused[:80]!r})"
        assert page.evaluate("window.scrollY") == scrolled, "an update moved the page"
        assert page.locator("#run-announcer").count() == 1
        page.keyboard.press("Enter")
        expect(page.locator("#action-cancel")).to_have_text("Cancelling…")
        expect(page.locator("#action-cancel")).to_be_disabled()
        wait_for_status(page, "Cancelled")
        run = Run.objects.get()
        assert run.status == Status.CANCELLED
        # Where it stopped: one step says Cancelled (which one depends on when the cancel landed).
        expect(page.locator(".step-item.state-cancelled")).to_have_count(1)
        expect(page.locator(".step-item.state-cancelled")).to_contain_text("Cancelled on request.")
        check_page(page, "13-run-cancelled")

        # A provider that refuses: the step it failed in is red and says why.
        slow.script.clear()  # the connection passed its check a moment ago: the next call is a step's
        slow.push({"status": 400, "message": "this model does not exist"})
        page.goto("/workflows/learn-agentic-ai/")
        page.get_by_role("button", name="Test run").click()
        wait_for_status(page, "Failed")
        failed = page.locator(".step-item.state-failed")
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text("refused the request")
        color = failed.locator(".state").evaluate("el => getComputedStyle(el).color")
        assert color == "rgb(164, 22, 26)", f"a failed step is not red: {color}"
        check_page(page, "14-run-failed")


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
    tab_to(page.get_by_role("button", name="Validate"))
    page.keyboard.press("Enter")
    wait_for_status(page, "Succeeded")
    tab_to(page.get_by_role("button", name="Test run with these inputs"))
    page.keyboard.press("Enter")
    wait_for_status(page, "Succeeded")
    tab_to(page.get_by_text("Output of “Study notes”"))
    page.keyboard.press("Enter")  # a summary opens its details
    assert page.locator("#step-notes details", has_text="Output of").get_attribute("open") is not None
    tab_to(page.get_by_role("link", name="Download notes.md"))
    with page.expect_download() as download_info:
        page.keyboard.press("Enter")
    assert Path(download_info.value.path()).read_text().startswith("# Learn Agentic AI")
    tab_to(page.get_by_role("button", name="Run full with these inputs"))
    page.keyboard.press("Enter")
    wait_for_status(page, "Succeeded")
