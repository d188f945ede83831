"""In a real browser: an operator connects a stand-in OpenAI-compatible server through the Providers page, and
a student runs learn-agentic-ai on it, choosing the model in the form; the run page shows its tokens."""

from __future__ import annotations

import pytest

from providers.models import ProviderConnection
from runs.models import Run, Status

from .support.fake_llm import fake_llm
from .test_browser import browser, check_page, log_in, site, wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
__all__ = ["browser", "site"]  # fixtures shared with test_browser


def _page(browser, site):
    context = browser.new_context(base_url=site, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    return context, page


def test_a_student_runs_on_the_local_server_an_operator_connected(browser, site):
    from playwright.sync_api import expect

    with fake_llm("openai") as server:
        operator_context, page = _page(browser, site)
        log_in(page, "olivia")
        page.get_by_role("link", name="Providers").click()
        page.get_by_label("Provider").select_option("openai_compatible")
        # The form follows the provider: its label, base URL hint and models.
        expect(page.get_by_label("Base URL")).to_have_attribute("placeholder", "http://127.0.0.1:11434/v1")
        expect(page.get_by_label("Label")).to_have_value("Local server")
        check_page(page, "models-01-providers-local-server")
        page.get_by_label("Label").fill("Lab server")
        page.get_by_label("Base URL").fill(server.base_url)
        page.get_by_label("The server is on my own network").check()
        page.get_by_label("Allow runs on models without a price").check()
        page.get_by_label("Default model").fill("llama3.2")
        page.get_by_role("button", name="Save connection").click()
        page.get_by_role("button", name="Test connection Lab server").click()
        # (the first call imports LiteLLM in the web test server: slow on a busy machine)
        expect(page.get_by_text("Connected to OpenAI-compatible server.").first).to_be_visible(timeout=90000)
        assert ProviderConnection.objects.get().default_model == "openai_compatible/llama3.2"
        operator_context.close()

        student_context, page = _page(browser, site)
        log_in(page, "sam")
        page.goto("/workflows/learn-agentic-ai/")
        model = page.get_by_label("Model", exact=True)
        options = model.locator("option").all_inner_texts()
        assert options[0].startswith("llama3.2 — OpenAI-compatible server (Lab server)")
        assert options[-1].startswith("Offline demo model (not AI)")
        check_page(page, "models-02-workflow-model-choice")
        model.select_option("openai_compatible/llama3.2")
        page.get_by_label("Topic").fill("Tool use on a lab server")
        page.get_by_role("button", name="Test run").click()
        wait_for_status(page, "Succeeded")
        # The stand-in counts 100 in and 50 out a call: two steps and the judge's call for the rubric check.
        expect(page.get_by_text("300 in · 150 out")).to_be_visible()
        # Every step, the quality checks included, says "free" for a model priced at $0 (never "$0").
        assert "<li>$0</li>" not in page.content() and page.content().count("<li>free</li>") >= 3
        check_page(page, "models-03-run-on-local-server")
        student_context.close()

    run = Run.objects.get()
    assert (run.status, run.model_used) == (Status.SUCCEEDED, "openai_compatible/llama3.2")
    assert {r["body"]["model"] for r in server.requests} == {"llama3.2"}
