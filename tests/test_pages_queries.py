"""Every page and partial makes the same number of queries with few or many runs, workflows and skills."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.urls import reverse

from catalog.models import Skill, SkillVersion
from providers import services as provider_services
from runs import estimates, usage
from runs.models import Mode, Status
from settings_app.roles import assign_role

from .factories import RunFactory, UserFactory, WorkflowVersionFactory

pytestmark = pytest.mark.django_db

_numbers = itertools.count()


def _grow(owner, others, catalog, *, runs: int, workflows: int, skills: int) -> None:
    """Add runs (finished, running; the owner's and others'), workflows and skills to the world."""
    new_skills = []
    for _ in range(skills):
        n = next(_numbers)
        skill = Skill.objects.create(name=f"skill-{n}", description=f"Skill {n}.", source="test")
        version = SkillVersion.objects.create(skill=skill, content_hash=f"{n:064d}", body="Body.")
        skill.latest = version
        skill.save()
        new_skills.append(version)
    versions = [catalog.latest_version]
    for _ in range(workflows):
        version = WorkflowVersionFactory()
        version.skills.set(new_skills)
        versions.append(version)
    catalog.latest_version.skills.add(*new_skills)
    for i in range(runs):
        user = owner if i % 2 else others[i % len(others)]
        status = [Status.SUCCEEDED, Status.FAILED, Status.RUNNING][i % 3]
        mode = Mode.TEST if i % 4 else Mode.FULL
        run = RunFactory(
            user=user,
            workflow_version=versions[i % len(versions)],
            status=status,
            mode=mode,
            model_used="openai/gpt-4o-mini",
            step_outputs={"answer": "Some text."} if status == Status.RUNNING else {},
        )
        usage.record_finished(run)


def _pages(catalog, run, running, skill: str) -> list[tuple[str, dict[str, str]]]:
    hx = {"HTTP_HX_REQUEST": "true"}
    return [
        (reverse("catalog:index"), {}),
        (reverse("catalog:index") + "?q=agent", hx),
        (reverse("catalog:detail", args=[catalog.slug]), {}),
        (reverse("catalog:skill", args=[skill]), {}),
        (reverse("runs:detail", args=[run.pk]), {}),
        (reverse("runs:detail", args=[running.pk]), {}),
        (reverse("runs:status", args=[running.pk]), hx),
        (reverse("runs:history"), {}),
        (reverse("runs:history") + "?status=succeeded&mode=test&workflow=learn-agentic-ai", {}),
        (reverse("runs:usage"), {}),
    ]


def _counts(client, urls, count_queries: Callable) -> dict[str, int]:
    counts = {}
    for url, headers in urls:
        cache.clear()  # the same state each time: no "already asked the worker" mark
        client.defaults.update(headers)
        counts[url + (" (htmx)" if headers else "")], _ = count_queries(client, url)
        for name in headers:
            client.defaults.pop(name)
        assert client.get(url, **headers).status_code == 200, url
    return counts


@pytest.mark.parametrize("role", ["Student", "Operator"])
@pytest.mark.parametrize("connected", [False, True])
def test_every_page_makes_as_many_queries_with_many_runs_workflows_and_skills(
    client, catalog, count_queries, role, connected
):
    owner, others = UserFactory(username="owner"), [UserFactory(username=f"other{i}") for i in range(3)]
    assign_role(owner, role)
    client.force_login(owner)
    if connected:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="T", api_key="sk-queries-0123456789abcdef"
        )
    _grow(owner, others, catalog, runs=2, workflows=1, skills=1)
    if connected:
        estimates.refresh(catalog.latest_version.pk)  # counted: the page prices stored rows
    run = RunFactory(user=owner, workflow_version=catalog.latest_version, status=Status.SUCCEEDED)
    running = RunFactory(
        user=owner, workflow_version=catalog.latest_version, status=Status.RUNNING, step_outputs={"answer": "x"}
    )
    urls = _pages(catalog, run, running, skill=Skill.objects.order_by("-pk").first().name)
    few = _counts(client, urls, count_queries)
    _grow(owner, others, catalog, runs=60, workflows=6, skills=5)
    if connected:
        estimates.refresh(catalog.latest_version.pk)
    many = _counts(client, urls, count_queries)
    assert many == few
