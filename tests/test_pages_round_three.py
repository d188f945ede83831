"""Issue 28 below the browser: one money vocabulary, refusals named, the local-server price, the Providers page's
health and model list (through the SSRF-guarded path), Members, history search / CSV / compare, edit and
re-run, and query counts that do not grow with the rows."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from providers import breaker, server_models
from providers import services as provider_services
from providers.errors import ProviderError
from providers.models import ModelPrice, ProviderConnection
from providers.resolution import Target
from runs import money, pipeline, services, timeline
from runs.models import Mode, Run, Status, UserBudget
from settings_app.roles import OPERATOR, STUDENT, assign_role

from .factories import RunFactory, UserFactory
from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    user = UserFactory(username="otto")
    assign_role(user, OPERATOR)
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


def _connect_local(server, **extra) -> ProviderConnection:
    return provider_services.save_connection(
        actor=None, ip=None, provider="openai_compatible", label="Lab", api_base=server.base_url,
        default_model="openai_compatible/llama3.2", allow_private_network=True, **extra,
    )  # fmt: skip


# -- finding 2: one vocabulary ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cost", "flags", "text"),
    [
        (Decimal(0), {"ran": False}, "not run"),
        (Decimal(0), {"free": True}, "free"),
        (Decimal(0), {}, "free"),  # a model priced at $0
        (None, {"unpriced": True}, "unpriced"),
        (Decimal("0.0031"), {}, "$0.0031"),
        (Decimal("0.0031"), {"unpriced": True}, "$0.0031 + unpriced calls"),
    ],
)
def test_describe_cost_says_free_priced_unpriced_or_not_run(cost, flags, text):
    assert money.describe_cost(cost, **flags) == text


def test_an_offline_run_is_free_on_its_page_in_my_runs_and_on_usage(alice_client, alice, catalog):
    run = services.start_run(workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST)
    pipeline.execute(run.pk)
    for url in (reverse("runs:detail", args=[run.pk]), reverse("runs:history"), reverse("runs:usage")):
        page = alice_client.get(url).content.decode()
        assert ">free<" in page, url
        assert "unpriced" not in page.replace("every run was free or unpriced", ""), url
        assert "free (offline)" not in page and "not started" not in page, url


def test_a_running_step_of_a_priced_model_is_not_called_unpriced(catalog, alice):
    run = RunFactory(
        user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING, model_used="openai/gpt-4o-mini",
        current_step="Outline from the skill's references", live_tokens=12, started_at=timezone.now(),
    )  # fmt: skip
    views = timeline.build(run, {})
    running = next(v for v in views if v.state == timeline.StepState.RUNNING)
    assert running.tokens == 12 and running.cost_text == ""  # known when its call ends, never "unpriced"


def test_a_replay_with_nothing_cached_does_not_promise_no_cost(catalog, alice):
    from runs import actions

    spec = dict(catalog.latest_version.spec, cache=True)
    type(catalog.latest_version).objects.filter(pk=catalog.latest_version.pk).update(spec=spec)
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.SUCCEEDED, mode=Mode.TEST)
    replay = next(a for a in actions.for_run(Run.objects.get(pk=run.pk), alice) if a.name == "replay")
    assert "no cost" not in replay.label and "normal price" in replay.reason


# -- finding 1: connected means runnable ----------------------------------------------------------------------
def test_the_form_prices_a_local_server_at_zero_and_saving_writes_that_price(operator_client):
    page = operator_client.get(reverse("settings:providers") + "?provider=openai_compatible").content.decode()
    assert 'name="input_price" value="0"' in page and 'name="output_price" value="0"' in page
    with fake_llm("openai") as server:
        data = {
            "provider": "openai_compatible", "label": "Lab", "api_base": server.base_url,
            "allow_private_network": "on", "default_model": "llama3.2", "input_price": "0", "output_price": "0",
        }  # fmt: skip
        assert operator_client.post(reverse("settings:providers"), data).status_code == 302
    price = ModelPrice.objects.get(model="openai_compatible/llama3.2")
    assert (price.input_per_million, price.output_per_million) == (0, 0)


def test_one_price_without_the_other_is_refused_and_nothing_is_saved(operator_client):
    data = {
        "provider": "openai_compatible", "label": "Lab", "api_base": "http://127.0.0.1:9/v1",
        "allow_private_network": "on", "input_price": "0",
    }  # fmt: skip
    response = operator_client.post(reverse("settings:providers"), data)
    assert response.status_code == 422 and "Give both prices" in response.content.decode()
    assert not ProviderConnection.objects.exists() and not ModelPrice.objects.exists()


def test_test_connection_warns_when_runs_would_be_refused_and_not_once_priced(operator_client):
    with fake_llm("openai") as server:
        connection = _connect_local(server)
        ok, message = provider_services.test_connection(connection, actor=None, ip=None)
        assert ok and "would be refused" in message and "Set its price" in message
        response = operator_client.post(reverse("settings:test", args=[connection.pk]), follow=True)
        assert 'class="message warning"' in response.content.decode()
        ModelPrice.objects.create(model=connection.default_model, input_per_million=0, output_per_million=0)
        ok, message = provider_services.test_connection(connection, actor=None, ip=None)
        assert ok and "refused" not in message


def test_a_refused_run_is_labelled_refused_and_tells_a_student_who_can_fix_it(alice_client, alice, catalog):
    with fake_llm("openai") as server:
        # Tested just now, as an operator would have: validation then makes no check call of its own.
        provider_services.test_connection(_connect_local(server), actor=None, ip=None)
        run = services.start_run(workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST)
        pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.STOPPED and run.is_refusal and run.status_label == "Refused"
    page = alice_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert ">Refused</span>" in page and "Stopped at a limit" not in page
    assert "Only an operator can fix this" in page and "<dd>not run</dd>" in page


def test_a_run_stopped_at_its_budget_after_working_is_still_stopped_at_a_limit(catalog, alice):
    run = RunFactory(
        user=alice, workflow_version=catalog.latest_version, status=Status.STOPPED, steps_done=1,
        reason="Stopped at the budget: $0.01 spent.",
    )  # fmt: skip
    assert not run.is_refusal and run.status_label == "Stopped at a limit"


# -- finding 7: the Providers page ----------------------------------------------------------------------------
@pytest.fixture
def trip(settings):
    """Open a connection's breaker the way calls do: enough tripping failures (the ratio breaker)."""
    settings.BREAKER_SYNC_SECONDS = 0  # every outcome is written at once
    settings.BREAKER_MIN_CALLS = 4
    settings.BREAKER_FAILURE_RATIO = 0.5
    settings.BREAKER_OPEN_SECONDS = 60
    breaker.reset_local()

    def trip(connection: ProviderConnection) -> None:
        target = Target(model="openai/gpt-4o-mini", provider=connection.provider, litellm_model="openai/gpt-4o-mini",
                        api_key="", api_base="", connection_id=connection.pk)  # fmt: skip
        for _ in range(4):
            breaker.record(target, ProviderError("down", kind="server", retryable=True))

    yield trip
    breaker.reset_local()


def test_the_providers_row_shows_last_success_last_failure_and_an_open_breaker(operator_client, catalog, alice, trip):
    with fake_llm("openai") as server:
        connection = _connect_local(server)
    RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.FAILED, connection=connection,
               finished_at=timezone.now())  # fmt: skip
    page = operator_client.get(reverse("settings:providers")).content.decode()
    assert "<dt>Breaker</dt><dd>closed</dd>" in page
    trip(connection)
    assert breaker.state_for(connection).state == "open"
    page = operator_client.get(reverse("settings:providers")).content.decode()
    assert "<dt>Last success</dt><dd>never</dd>" in page
    assert "<dt>Last failure</dt><dd>never</dd>" not in page
    # An open breaker holds runs back until its probe call (they wait; they no longer skip the connection).
    assert "<dt>Breaker</dt><dd>open until " in page and "runs wait for its probe call" in page
    assert "Tested " not in page  # "Not tested" and "Tested 13:43" never together


def test_the_server_s_models_are_listed_with_its_key_through_the_guarded_path():
    with fake_llm("openai") as server:
        server.models = ["llama3.2", "phi4"]
        connection = _connect_local(server, api_key="sk-local-0123456789abcdef")
        models, problem = server_models.list_models(connection)
    assert (models, problem) == (["openai_compatible/llama3.2", "openai_compatible/phi4"], "")
    assert server.model_requests[0]["Authorization"] == "Bearer sk-local-0123456789abcdef"


def test_listing_models_refuses_a_private_address_the_operator_did_not_allow_and_a_metadata_one():
    with fake_llm("openai") as server:
        connection = _connect_local(server)
        ProviderConnection.objects.filter(pk=connection.pk).update(allow_private_network=False)
        connection.refresh_from_db()
        models, problem = server_models.list_models(connection)
        assert models == [] and "private" in problem and not server.model_requests
    metadata = ProviderConnection(provider="openai_compatible", api_base="http://169.254.169.254/v1")
    assert server_models.list_models(metadata)[1] == "Link-local and cloud metadata addresses are never allowed."


# -- finding 5: Members ------------------------------------------------------------------------------------------
def test_members_are_found_by_name_and_a_budget_is_set_by_username(operator_client, operator):
    stella = UserFactory(username="stella", first_name="Stella")
    assign_role(stella, STUDENT)
    page = operator_client.get(reverse("settings:members") + "?q=stel").content.decode()
    assert "stella" in page and "otto" not in page.split("<tbody>")[1] and "Student" in page
    url = reverse("settings:member", args=["stella"])
    assert operator_client.post(url, {"daily_usd": "1.5", "max_active_runs": "2"}).status_code == 302
    assert UserBudget.objects.get(user=stella).max_active_runs == 2
    response = operator_client.post(url, {"daily_usd": "", "max_active_runs": "2"})
    assert response.status_code == 422 and UserBudget.objects.get(user=stella).daily_usd == Decimal("1.5")
    assert operator_client.post(url, {"daily_usd": "", "max_active_runs": ""}).status_code == 302
    assert not UserBudget.objects.filter(user=stella).exists()


def test_a_student_cannot_open_members(alice_client):
    assert alice_client.get(reverse("settings:members")).status_code == 403
    assert alice_client.get(reverse("settings:member", args=["alice"])).status_code == 403


# -- history, compare, edit and re-run ---------------------------------------------------------------------
def test_history_search_and_csv_follow_the_filters_and_defuse_formulas(alice_client, alice, bob, catalog):
    version = catalog.latest_version
    RunFactory(user=alice, workflow_version=version, inputs={"topic": '=HYPERLINK("x")'}, status=Status.SUCCEEDED)
    RunFactory(user=alice, workflow_version=version, inputs={"topic": "Memory"}, status=Status.SUCCEEDED)
    RunFactory(user=bob, workflow_version=version, inputs={"topic": "Memory of bob"}, status=Status.SUCCEEDED)
    page = alice_client.get(reverse("runs:history") + "?q=memory").content.decode()
    assert "Memory" in page and "HYPERLINK" not in page and "bob" not in page
    response = alice_client.get(reverse("runs:export") + "?q=hyperlink")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 and rows[0]["key_input"] == '\'=HYPERLINK("x")'  # a spreadsheet reads it as text


def test_compare_shows_only_runs_the_user_may_see(alice_client, alice, bob, catalog):
    mine = RunFactory(user=alice, workflow_version=catalog.latest_version, step_outputs={"notes": "a\nb"})
    other = RunFactory(user=alice, workflow_version=catalog.latest_version, step_outputs={"notes": "a\n<b>c</b>"})
    theirs = RunFactory(user=bob, workflow_version=catalog.latest_version)
    page = alice_client.get(reverse("runs:compare") + f"?run={mine.pk}&run={other.pk}").content.decode()
    assert "&lt;b&gt;c&lt;/b&gt;" in page and "<b>c</b>" not in page  # outputs are escaped in the diff
    assert alice_client.get(reverse("runs:compare") + f"?run={mine.pk}&run={theirs.pk}").status_code == 404
    assert alice_client.get(reverse("runs:compare") + f"?run={mine.pk}").status_code == 400


def test_edit_and_rerun_prefills_from_ones_own_run_only(alice_client, alice, bob, catalog):
    mine = RunFactory(user=alice, workflow_version=catalog.latest_version, inputs={"topic": "Reflection loops"})
    theirs = RunFactory(user=bob, workflow_version=catalog.latest_version, inputs={"topic": "Bob's secret topic"})
    url = reverse("catalog:detail", args=[catalog.slug])
    assert 'value="Reflection loops"' in alice_client.get(f"{url}?from={mine.pk}").content.decode()
    page = alice_client.get(f"{url}?from={theirs.pk}").content.decode()
    assert "Bob's secret topic" not in page and "Bob&#x27;s secret topic" not in page


# -- query counts ------------------------------------------------------------------------------------------
def test_members_providers_history_and_csv_make_as_many_queries_with_many_rows(
    operator_client, operator, catalog, count_queries, trip
):
    def grow(n: int) -> None:
        for i in range(n):
            person = UserFactory(username=f"p{n}-{i}")
            assign_role(person, STUDENT)
            UserBudget.objects.create(user=person, daily_usd=Decimal(1))
            connection = ProviderConnection.objects.create(provider="openai", label=f"C{n}-{i}")
            if i % 2:
                trip(connection)  # half the rows have an open breaker, the others none at all
            RunFactory(user=person, workflow_version=catalog.latest_version, status=Status.SUCCEEDED,
                       connection=connection, inputs={"topic": f"t{i}"}, model_used="openai/gpt-4o-mini")  # fmt: skip

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def csv_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            rows = b"".join(operator_client.get(reverse("runs:export")).streaming_content).count(b"\n")
        return len(ctx.captured_queries) if rows else -1

    urls = [
        reverse("settings:members"), reverse("settings:members") + "?q=p", reverse("settings:providers"),
        reverse("runs:history") + "?q=t",
    ]  # fmt: skip
    grow(2)
    few = {url: count_queries(operator_client, url)[0] for url in urls} | {"csv": csv_queries()}
    grow(20)
    many = {url: count_queries(operator_client, url)[0] for url in urls} | {"csv": csv_queries()}
    assert many == few
