"""Cost estimates on the workflow page come from counts the worker stored, priced at the current price."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from catalog import inputs as run_inputs
from providers import pricing
from providers import services as provider_services
from providers.models import ModelPrice
from providers.resolution import configured_connections, target_for
from runs import costs, estimates
from runs.models import CostEstimate, Mode

pytestmark = pytest.mark.django_db

KEY = "sk-estimate-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()  # "asked the worker already" marks must not leak from another test


@pytest.fixture
def openai(db):
    return provider_services.save_connection(actor=None, ip=None, provider="openai", label="T", api_key=KEY)


def test_a_missing_count_is_asked_of_the_worker_once(alice_client, catalog, openai, django_capture_on_commit_callbacks):
    url = reverse("catalog:detail", args=[catalog.slug])
    with django_capture_on_commit_callbacks(execute=True):
        page = alice_client.get(url).content.decode()
        alice_client.get(url)  # a second view within the minute does not queue it again
    assert "being counted" in page
    assert [task.func() for task in OrmQ.objects.all()] == ["runs.estimates.refresh"]
    assert tuple(OrmQ.objects.get().args()) == (catalog.latest_version.pk,)


def test_the_page_shows_what_the_pipeline_would_estimate(alice_client, catalog, openai):
    version = catalog.latest_version
    assert estimates.refresh(version.pk) == 1
    rows = estimates.for_version(version)
    target = target_for("openai/default", configured_connections()["openai"])
    skills = {sv.skill.name: sv for sv in version.skills.select_related("skill")}
    defaults = run_inputs.defaults(version.spec["inputs"])
    for mode in (Mode.TEST, Mode.FULL):
        expected = costs.upper_estimate(target, pricing.price_of(target), version.spec, mode, defaults, skills)
        assert expected is not None and abs(rows[0][mode] - expected) <= Decimal("0.000001")
    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert page.count("≤ $0.0") == 2 and "being counted" not in page


def test_an_operators_price_applies_at_once_without_a_recount(catalog, openai):
    version = catalog.latest_version
    estimates.refresh(version.pk)
    counted = CostEstimate.objects.get()
    ModelPrice.objects.create(model=counted.model, input_per_million=Decimal(1), output_per_million=Decimal(2))
    row = estimates.for_version(version)[0]
    expected = (Decimal(counted.test_input_tokens) + 2 * Decimal(counted.test_output_tokens)) / 1_000_000
    assert row["test"] == expected.quantize(costs.CENT_FRACTION)


def test_a_new_default_model_is_counted_again(catalog, openai, django_capture_on_commit_callbacks):
    estimates.refresh(catalog.latest_version.pk)
    openai.default_model = "openai/gpt-4o"
    openai.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert estimates.for_version(catalog.latest_version)[0]["pending"] is True
    estimates.refresh(catalog.latest_version.pk)
    assert estimates.for_version(catalog.latest_version)[0]["model"] == "openai/gpt-4o"


def test_a_model_that_cannot_be_resolved_shows_no_estimate_rather_than_an_error(alice_client, catalog, openai):
    from providers.crypto import encrypt

    openai.encrypted_key = encrypt("x")[:-4] + "AAAA"  # undecryptable: SecretUnreadable on the worker
    openai.save()
    estimates.refresh(catalog.latest_version.pk)
    assert CostEstimate.objects.get().model == ""
    response = alice_client.get(reverse("catalog:detail", args=[catalog.slug]))
    assert response.status_code == 200 and "≤ $" not in response.content.decode()


def test_a_template_workflow_is_counted_again_when_its_default_skill_changes(
    catalog, openai, django_capture_on_commit_callbacks
):
    from catalog.models import Skill, SkillVersion, Workflow

    version = Workflow.objects.get(slug="skill-quiz").latest_version
    estimates.refresh(version.pk)
    assert estimates.for_version(version)[0]["pending"] is False
    skill = Skill.objects.get(name="learn-agentic-ai")
    skill.latest = SkillVersion.objects.create(skill=skill, content_hash="f" * 64, body="A much longer body. " * 500)
    skill.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert estimates.for_version(version)[0]["pending"] is True
    before = CostEstimate.objects.filter(workflow_version=version).order_by("pk").first()
    estimates.refresh(version.pk)
    after = estimates.for_version(version)[0]
    assert after["pending"] is False and before is not None
    assert CostEstimate.objects.filter(workflow_version=version).last().test_input_tokens > before.test_input_tokens
