"""The usage page shows the quality checks' pass rate per workflow and model, from the rollups."""

from __future__ import annotations

import re

import pytest

from runs import usage
from runs.models import Mode, Status, UsageDayTotal

from .factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db


def finished(version, user, model: str, passed: bool | None) -> None:
    run = RunFactory(
        workflow_version=version, user=user, mode=Mode.TEST, status=Status.SUCCEEDED if passed else Status.FAILED,
        model_used=model, checks_passed=passed,
    )  # fmt: skip
    usage.record_finished(run)


def rates(page: str) -> list[tuple[str, ...]]:
    section = page.split('id="pass-title"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+%)</td></tr>", section)
    return [tuple(row) for row in rows]


def test_the_usage_page_shows_pass_rates_per_workflow_and_model_for_operators_and_students(catalog, client):
    version = catalog.latest_version
    sam = UserFactory(username="sam")
    for passed in (True, True, False):
        finished(version, sam, "offline/demo", passed)
    finished(version, sam, "openai/gpt-4o-mini", False)
    finished(version, sam, "openai/gpt-4o-mini", None)  # no checks ran (cancelled before them): not counted
    finished(version, UserFactory(username="kim"), "offline/demo", True)
    client.force_login(sam)
    assert rates(client.get("/runs/usage/").content.decode()) == [
        ("Learn Agentic AI", "offline/demo", "3", "2", "67%"),
        ("Learn Agentic AI", "openai/gpt-4o-mini", "1", "0", "0%"),
    ]
    client.force_login(UserFactory(username="olivia", is_superuser=True))
    expected = [
        ("Learn Agentic AI", "offline/demo", "4", "3", "75%"),
        ("Learn Agentic AI", "openai/gpt-4o-mini", "1", "0", "0%"),
    ]
    assert rates(client.get("/runs/usage/").content.decode()) == expected
    before = sorted(UsageDayTotal.objects.values_list("model", "checked_runs", "passed_runs"))
    usage.rebuild()  # the nightly rebuild counts the same
    assert sorted(UsageDayTotal.objects.values_list("model", "checked_runs", "passed_runs")) == before
    assert rates(client.get("/runs/usage/").content.decode()) == expected
