"""In a real browser with a real qcluster: an operator saves an eval set of 3 input sets for learn-agentic-ai
and runs it on 2 models (the offline demo and a stand-in OpenAI-compatible server over real HTTP that gives
poor answers); the matrix fills in as the runs end and shows each model's pass rate, with links to the runs."""

from __future__ import annotations

import pytest

from providers import services as provider_services
from runs.models import Run, Status

from .support.fake_llm import fake_llm
from .test_browser import browser, check_page, log_in, site

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
__all__ = ["browser", "site"]  # fixtures shared with test_browser
STAND_IN = "openai_compatible/stand-in"
CASES = '{"topic": "Memory"}\n{"topic": "Planning", "level": "advanced"}\n{"topic": "Tool use"}'


def test_an_eval_set_of_three_inputs_on_two_models_runs_from_the_web_and_shows_its_matrix(browser, site):
    from playwright.sync_api import expect

    with fake_llm("openai") as server:
        server.default = {"content": "## Notes - point one - point two"}
        provider_services.save_connection(
            actor=None, ip=None, provider="openai_compatible", label="Stand-in", api_base=server.base_url,
            allow_private_network=True, default_model=STAND_IN, options={"allow_unpriced": True},
        )  # fmt: skip
        context = browser.new_context(base_url=site, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20000)
        log_in(page, "olivia")
        page.get_by_role("link", name="Eval sets").click()
        check_page(page, "evals-01-empty")
        page.get_by_label("Workflow").select_option("learn-agentic-ai")
        page.get_by_label("Name").fill("Three topics")
        page.get_by_label("Input sets").fill(CASES)
        page.get_by_role("button", name="Save eval set").click()
        expect(page.get_by_role("heading", name="Three topics")).to_be_visible()
        page.get_by_label("stand-in — OpenAI-compatible server (Stand-in)").check()
        page.get_by_label("Offline demo model (not AI)").check()
        check_page(page, "evals-02-set")
        page.get_by_role("button", name="Run the eval set").click()
        expect(page.get_by_role("heading", name="Three topics: the matrix")).to_be_visible()
        offline = page.locator('tr[data-model="offline/demo"]')
        stand_in = page.locator(f'tr[data-model="{STAND_IN}"]')
        expect(offline).to_contain_text("3 of 3", timeout=180000)  # the matrix updates itself as runs end
        expect(stand_in).to_contain_text("3 of 3", timeout=180000)
        expect(offline).to_contain_text("100% (3 of 3)")
        expect(stand_in).to_contain_text("0% (0 of 3)")
        expect(
            page.get_by_role("link", name="Checks failed — 2. Planning on openai_compatible/stand-in")
        ).to_be_visible()
        check_page(page, "evals-03-matrix")
        page.get_by_role("link", name="Passed — 1. Memory on offline/demo").click()
        expect(page.locator("#step-checks")).to_contain_text("Passed: notes-sections")
        context.close()

    runs = Run.objects.all()
    assert runs.count() == 6
    assert sorted(runs.values_list("model_used", "status")) == sorted(
        [("offline/demo", Status.SUCCEEDED)] * 3 + [(STAND_IN, Status.FAILED)] * 3
    )
