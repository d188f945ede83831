"""The skills pages in a real browser, checked with axe-core (the fixtures are the student journey's)."""

from __future__ import annotations

import pytest

from .test_browser import browser, check_page, log_in, page, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_student_finds_a_skill_filters_the_index_and_opens_its_page(page):  # noqa: F811
    log_in(page, "sam")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Skills").click()
    page.get_by_role("heading", name="Skills", exact=True).wait_for()
    check_page(page, "skills-index")
    page.get_by_label("Search").fill("agentic")
    page.locator("#result-count").get_by_text("1 skill matching “agentic”").wait_for()
    page.get_by_label("Licence").select_option("MIT")
    page.get_by_role("link", name="learn-agentic-ai").click()
    page.get_by_role("heading", name="learn-agentic-ai").wait_for()
    assert page.locator("dd").first.inner_text() == "MIT"
    check_page(page, "skill-page")
