"""Round three of the student and operator pages (issue 28), in a real browser: a connected local server runs
at once, refusals say so and who can fix them, one money vocabulary, Members, the skills browser, history
search / CSV / compare / edit and re-run, the Providers page's health, and axe on the API docs and the admin
pages operators use. Every page passes check_page (axe, no sideways scroll, no clipped text)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from catalog.models import Workflow
from catalog.services import sync_workflows
from providers import services as provider_services
from providers.models import ModelPrice, ProviderConnection
from runs import pipeline, services
from runs.models import Mode, Run, Status, UserBudget
from settings_app.roles import OPERATOR, STUDENT, assign_role

from .factories import UserFactory
from .support.fake_llm import fake_llm
from .test_browser import (  # noqa: F401 (browser, site and page are fixtures)
    DESKTOP,
    browser,
    check_page,
    log_in,
    page,
    site,
    wait_for_status,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def light(browser, live_server) -> Iterator[object]:  # noqa: F811
    """A page on the live server without a cluster: for pages whose runs are executed in this process."""
    from playwright.sync_api import expect

    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    UserFactory(username="olivia", is_staff=True, is_superuser=True)
    assign_role(UserFactory(username="sam"), STUDENT)
    expect.set_options(timeout=20000)
    context = browser.new_context(base_url=live_server.url, accept_downloads=True, viewport=DESKTOP)
    tab = context.new_page()
    tab.set_default_timeout(20000)
    yield tab
    context.close()


def _run(user, *, topic: str, mode: str = Mode.TEST) -> Run:
    workflow = Workflow.objects.get(slug="learn-agentic-ai")
    run = services.start_run(
        workflow_version=workflow.latest_version, user=user, inputs={"topic": topic}, mode=mode, queue=False
    )
    pipeline.execute(run.pk)
    return Run.objects.get(pk=run.pk)


# -- finding 1: "Connected" leads to a runnable state -------------------------------------------------------
def test_a_local_server_is_priced_at_zero_lists_its_models_and_a_students_first_run_succeeds(page, site):  # noqa: F811
    from playwright.sync_api import expect

    with fake_llm("openai") as server:
        server.models = ["llama3.2", "qwen2.5-coder", "mistral-nemo"]
        log_in(page, "olivia")
        page.get_by_role("link", name="Providers").click()
        page.get_by_label("Provider").select_option("openai_compatible")
        # A server on one's own network is free by default, and the form says so where it can be changed.
        expect(page.get_by_label("Price per million input tokens (USD)")).to_have_value("0")
        expect(page.get_by_label("Price per million output tokens (USD)")).to_have_value("0")
        page.get_by_label("Label").fill("Lab server")
        page.get_by_label("Base URL").fill(server.base_url)
        page.get_by_label("Default model").fill("llama3.2")
        page.get_by_role("button", name="Save connection").click()
        page.get_by_role("button", name="Test connection Lab server").click()
        row = page.locator("tr", has_text="Lab server")
        expect(row).to_contain_text("Connected to OpenAI-compatible server.", timeout=90000)
        expect(row).not_to_contain_text("would be refused")
        # The row shows its health, and the models the server lists at /v1/models.
        expect(row).to_contain_text("Last success")
        expect(row).to_contain_text("closed")  # the breaker
        expect(row).to_contain_text("openai_compatible/qwen2.5-coder")
        check_page(page, "ux-01-providers-local-server")
        assert server.model_requests, "the model list was never asked for"
        page.get_by_role("link", name="Edit Lab server").click()
        suggestions = page.locator("#model-suggestions option").evaluate_all("os => os.map(o => o.value)")
        assert "openai_compatible/mistral-nemo" in suggestions  # the server's own models, not three fixed names
        check_page(page, "ux-02-provider-edit-prices")
        assert ModelPrice.objects.get(model="openai_compatible/llama3.2").input_per_million == 0

        page.context.clear_cookies()
        log_in(page, "sam")
        page.goto("/workflows/learn-agentic-ai/")
        page.get_by_label("Topic").fill("Tools on a lab server")
        page.get_by_role("button", name="Test run").click()
        wait_for_status(page, "Succeeded")
        expect(page.locator(".facts")).to_contain_text("free")
        check_page(page, "ux-03-run-on-free-local-server")
    assert Run.objects.get().cost_usd == 0


def test_test_connection_warns_before_runs_are_refused_and_a_refusal_says_who_can_fix_it(page, site):  # noqa: F811
    from playwright.sync_api import expect

    with fake_llm("openai") as server:
        connection = provider_services.save_connection(
            actor=None, ip=None, provider="openai_compatible", label="Unpriced lab", api_base=server.base_url,
            default_model="openai_compatible/llama3.2", allow_private_network=True,
        )  # fmt: skip
        log_in(page, "olivia")
        page.get_by_role("link", name="Providers").click()
        page.get_by_role("button", name="Test connection Unpriced lab").click()
        row = page.locator(f"#connection-{connection.pk}")
        expect(row).to_contain_text("would be refused", timeout=90000)
        expect(row).to_contain_text("Set its price on this connection's form")
        check_page(page, "ux-04-providers-warning")

        page.context.clear_cookies()
        log_in(page, "sam")
        page.goto("/workflows/learn-agentic-ai/")
        page.get_by_role("button", name="Test run").click()
        page.locator("#status-title").get_by_text("Refused", exact=True).wait_for(timeout=60000)
        expect(page.locator("#status-title")).not_to_contain_text("Stopped at a limit")
        expect(page.locator("#who-fixes")).to_contain_text("Only an operator can fix this")
        expect(page.locator(".facts")).to_contain_text("not run")
        check_page(page, "ux-05-run-refused")
        page.get_by_role("link", name="My runs").click()
        expect(page.locator("table.history")).to_contain_text("Refused")
        expect(page.locator("table.history")).to_contain_text("not run")
    assert Run.objects.get().status == Status.STOPPED


# -- finding 8: the timeline ------------------------------------------------------------------------------
def test_the_timeline_shows_a_retry_as_it_happens_times_each_step_and_keeps_a_cancelled_steps_text(page, site):  # noqa: F811
    from playwright.sync_api import expect

    with fake_llm("openai") as slow:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Slow", api_key="sk-browser-0123456789abcdefghij",
            api_base=slow.base_url, allow_private_network=True,
        )  # fmt: skip
        words = " ".join(f"word{i}" for i in range(400))
        # the connection check, the first step (one server error, then an answer), then a slow stream
        slow.push({}, {"status": 500, "message": "boom"}, {}, {"chunk_delay": 0.3, "content": words})
        log_in(page, "sam")
        page.goto("/workflows/learn-agentic-ai/")
        page.get_by_role("button", name="Test run").click()
        expect(page.locator("#step-outline")).to_contain_text("failed (server)", timeout=90000)
        expect(page.locator(".live-output")).to_contain_text("word3", timeout=60000)
        running = page.locator(".step-item.state-running")
        step_time = running.locator("[data-elapsed]").get_attribute("data-elapsed")
        run_time = page.locator(".facts [data-elapsed]").get_attribute("data-elapsed")
        assert int(step_time or 0) < int(run_time or 0), "the running step shows the run's time, not its own"
        check_page(page, "ux-06-retry-on-the-timeline")
        page.get_by_role("button", name="Cancel run").click()
        wait_for_status(page, "Cancelled")
        cancelled = page.locator(".step-item.state-cancelled")
        expect(cancelled).to_contain_text("before it stopped")
        expect(cancelled.get_by_label(re.compile("before it stopped"))).to_contain_text("word1")
        expect(page.locator("#step-outline")).to_contain_text("failed (server)")  # still there after the end
        check_page(page, "ux-07-cancelled-step-keeps-its-text")


# -- finding 5: members --------------------------------------------------------------------------------------
def test_an_operator_finds_a_member_by_name_and_sets_her_budget_without_an_id(light):
    from playwright.sync_api import expect

    tab = light  # a page without a cluster
    operator = UserFactory(username="otto")
    assign_role(operator, OPERATOR)
    stella = UserFactory(username="stella", first_name="Stella", last_name="Ng")
    assign_role(stella, STUDENT)
    log_in(tab, "otto")
    tab.get_by_role("link", name="Members").click()
    check_page(tab, "ux-08-members")
    tab.get_by_label("Name, username or email").fill("ng")
    tab.get_by_role("button", name="Search").click()
    table = tab.locator("table")
    expect(table).to_contain_text("stella")
    expect(table).not_to_contain_text("sam")
    tab.get_by_role("link", name="Set budget of stella").click()
    tab.get_by_label("Daily budget (USD)").fill("2.50")
    tab.get_by_label("Runs at once").fill("3")
    check_page(tab, "ux-09-member-budget")
    tab.get_by_role("button", name="Save budget").click()
    expect(tab.locator(".messages")).to_contain_text("Budget of stella saved.")
    expect(tab.locator("tr", has_text="stella")).to_contain_text("$2.50")
    budget = UserBudget.objects.get(user=stella)
    assert (budget.daily_usd, budget.max_active_runs) == (Decimal("2.50"), 3)
    # The admin's "Add user budget" leads here rather than to a raw id field an operator cannot look up.
    tab.goto("/admin/runs/userbudget/add/")
    expect(tab.get_by_role("heading", name="Members")).to_be_visible()


# -- finding 6: the skills browser --------------------------------------------------------------------------
def test_the_skills_browser_shows_skill_md_every_text_file_and_metadata_as_a_list(light):
    from playwright.sync_api import expect

    tab = light  # a page without a cluster
    log_in(tab, "sam")
    tab.goto("/skills/learn-agentic-ai/")
    contents = tab.locator("section", has_text="Contents")
    skill_md = contents.locator("details", has_text="SKILL.md").first
    expect(skill_md.locator(".markdown h1, .markdown h2").first).to_be_visible()  # rendered, not raw
    files = contents.locator("details.file-detail")
    assert files.count() >= 2, "the reference files are not shown"
    files.nth(1).locator("summary").click()
    expect(files.nth(1).locator(".file-body")).not_to_be_empty()
    assert "{'" not in tab.locator(".skill-facts").inner_text()  # metadata is not a Python dict
    check_page(tab, "ux-10-skill-contents")


# -- history: columns, search, CSV, compare, edit and re-run ----------------------------------------------
def test_history_searches_inputs_exports_csv_compares_two_runs_and_edits_and_reruns(light):
    from playwright.sync_api import expect

    tab = light  # a page without a cluster
    sam = UserFactory(username="sam")
    first = _run(sam, topic="Planning agents")
    second = _run(sam, topic="Memory for agents")
    log_in(tab, "sam")
    tab.get_by_role("link", name="My runs").click()
    table = tab.locator("table.history")
    for column in ("Key input", "Model", "Duration", "Cost"):
        expect(table.get_by_role("columnheader", name=column)).to_be_visible()
    expect(table).to_contain_text("offline/demo")
    expect(table).to_contain_text("free")  # the offline run's word on every tab
    expect(table).not_to_contain_text("unpriced")
    check_page(tab, "ux-11-history-columns")
    tab.get_by_label("Inputs containing").fill("memory")
    tab.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("Memory for agents")
    expect(table).not_to_contain_text("Planning agents")
    with tab.expect_download() as download_info:
        tab.get_by_role("link", name="Download these runs as CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [r["id"] for r in rows] == [str(second.pk)] and rows[0]["cost"] == "free"

    tab.get_by_role("link", name="My runs").click()
    tab.locator(f"#compare-{first.pk}").check()
    tab.locator(f"#compare-{second.pk}").check()
    tab.get_by_role("button", name="Compare the two ticked runs").click()
    expect(tab.get_by_role("heading", name="Compare two runs")).to_be_visible()
    expect(tab.locator("tr.differs", has_text="Input: topic")).to_contain_text("Planning agents")
    expect(tab.locator(".diff-add").first).to_be_visible()
    check_page(tab, "ux-12-compare")

    tab.goto(f"/runs/{first.pk}/")
    tab.get_by_role("link", name="Edit and re-run").click()
    expect(tab.get_by_label("Topic")).to_have_value("Planning agents")
    expect(tab.locator("#prefilled")).to_contain_text("Filled in from")
    check_page(tab, "ux-13-edit-and-rerun")


# -- findings 8 and 9: tokens, the API docs, the admin pages operators use ---------------------------------
def test_a_new_token_can_be_copied_and_the_api_docs_and_admin_pages_pass_axe(light):
    from playwright.sync_api import expect

    tab = light  # a page without a cluster
    log_in(tab, "olivia")
    tab.get_by_role("link", name="API tokens").click()
    expect(tab.get_by_label("Run: read, and start", exact=False)).to_be_checked()  # what scripts are for
    tab.get_by_label("Name").fill("script")
    tab.get_by_role("button", name="Create token").click()
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab.get_by_role("button", name="Copy token").click()
    expect(tab.locator("#new-token-copied")).to_have_text("Copied.")
    secret = tab.get_by_role("textbox", name="Token", exact=True).input_value()
    assert tab.evaluate("navigator.clipboard.readText()") == secret

    tab.goto("/api/v1/docs")
    tab.locator(".opblock-summary").first.wait_for()
    check_page(tab, "ux-14-api-docs")
    tab.get_by_text("/api/v1/workflows", exact=True).first.click()
    tab.get_by_role("button", name="Try it out").click()
    check_page(tab, "ux-15-api-docs-try-it-out")

    sam = type(UserFactory(username="sam")).objects.get(username="sam")
    for name, url in (
        ("ux-16-admin-users", "/admin/auth/user/"),
        ("ux-17-admin-user-change", f"/admin/auth/user/{sam.pk}/change/"),
        ("ux-18-admin-budgets", "/admin/runs/userbudget/"),
        ("ux-19-admin-connections", "/admin/providers/providerconnection/"),
        ("ux-20-admin-runs", "/admin/runs/run/"),
    ):
        tab.goto(url)
        check_page(tab, name)
    assert ProviderConnection.objects.count() == 0


# -- finding 4: clipped text ---------------------------------------------------------------------------------
def test_the_estimate_card_and_the_usage_tables_keep_their_text_inside_at_both_widths(light):
    from playwright.sync_api import expect

    from runs import estimates, usage

    tab = light  # a page without a cluster
    provider_services.save_connection(
        actor=None, ip=None, provider="openai_compatible", label="Lab", api_base="http://127.0.0.1:9/v1",
        default_model="openai_compatible/llama3.2", allow_private_network=True,
    )  # fmt: skip
    provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="Team", api_key="sk-layout-0123456789abcdefghij"
    )
    log_in(tab, "sam")
    tab.goto("/workflows/learn-agentic-ai/")
    expect(tab.get_by_text("being counted").first).to_be_visible()
    check_page(tab, "ux-21-workflow-estimates-counting")
    workflow = Workflow.objects.get(slug="learn-agentic-ai")
    estimates.refresh(workflow.latest_version.pk)
    tab.reload()
    expect(tab.get_by_text("≤ $").first).to_be_visible()
    check_page(tab, "ux-22-workflow-estimates")

    sam = type(UserFactory(username="sam")).objects.get(username="sam")
    for model, cost in (("openai_compatible/llama3.2", "0"), ("openai/gpt-4o-mini", "0.0014"), ("", "0")):
        run = Run.objects.create(
            user=sam, workflow_version=workflow.latest_version, mode=Mode.TEST, status=Status.SUCCEEDED,
            model_used=model, cost_usd=Decimal(cost), prompt_tokens=1200 if model else 0,
            inputs_hash="x", cost_unpriced=model.startswith("openai_compatible"),
        )  # fmt: skip
        usage.record_finished(run)
    tab.goto("/runs/usage/")
    expect(tab.locator("#prov-title")).to_be_visible()
    expect(tab.locator("table", has_text="Provider")).to_contain_text("not run")
    check_page(tab, "ux-23-usage")
