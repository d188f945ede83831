"""The token page and the interactive API docs in a real browser: accessible, no CSP violation, and the docs
call the API with the browser's session (and its CSRF token)."""

from __future__ import annotations

import pytest
from django.conf import settings

from api.models import AccessToken
from catalog.services import sync_workflows

from .factories import UserFactory
from .test_browser import browser, check_page, log_in  # noqa: F401 (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, live_server):  # noqa: F811
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    UserFactory(username="sam")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.problems = problems
    yield page
    context.close()


def test_a_student_makes_a_token_and_tries_the_api_in_the_docs(page):
    from playwright.sync_api import expect

    log_in(page, "sam")
    page.get_by_role("link", name="API tokens").click()
    check_page(page, "api-01-tokens")
    page.get_by_label("Name").fill("my script")
    page.get_by_label("Run: read, and start").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_role("textbox", name="Token", exact=True).input_value()
    assert secret.startswith("awp_") and AccessToken.objects.get().scope == "run"
    check_page(page, "api-02-token-created")
    page.reload()  # a reload re-sends nothing: the form was posted once
    page.goto("/api/tokens/")
    assert secret not in page.content()

    page.goto("/api/v1/docs")
    page.get_by_text("/api/v1/workflows", exact=True).first.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(page.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")

    # A write from the docs goes with the session's CSRF token.
    start = page.locator(".opblock-post", has_text="/api/v1/runs").first
    start.locator(".opblock-summary").click()
    start.get_by_role("button", name="Try it out").click()
    start.locator("textarea.body-param__text").fill('{"workflow": "learn-agentic-ai", "mode": "validate"}')
    start.get_by_role("button", name="Execute").click()
    expect(start.locator(".live-responses-table tbody .response-col_status").first).to_have_text("201")
    assert page.problems == [], page.problems  # no CSP violation, no script error
