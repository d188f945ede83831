"""The history pages: keyset pagination on an index, no whole-table COUNT, filters on created_at ranges."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs import paging
from runs.models import Run, Status
from settings_app.roles import assign_role

from .factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db

_LINK = re.compile(r'href="\?([^"]*(?:before|after)=[^"]+)">(Newer|Older)</a>')


def _make_runs(user, version, count: int, *, same_second: bool = False) -> list[Run]:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    runs = [RunFactory.build(user=user, workflow_version=version) for _ in range(count)]
    for run in runs:
        run.status = Status.SUCCEEDED
    Run.objects.bulk_create(runs)
    # Half share one timestamp, so the pages must tell ties apart by id.
    for i, run in enumerate(runs):
        run.created_at = start if same_second and i % 2 else start + timedelta(minutes=i)
    Run.objects.bulk_update(runs, ["created_at"])
    return runs


def _links(page: str) -> dict[str, str]:
    return {label: "?" + href.replace("&amp;", "&") for href, label in _LINK.findall(page)}


def _run_ids(page: str) -> list[str]:
    return re.findall(r'href="/runs/([0-9a-f-]{36})/"', page)


def test_it_walks_every_run_once_older_then_newer_even_with_equal_timestamps(alice_client, alice, catalog):
    runs = _make_runs(alice, catalog.latest_version, 60, same_second=True)
    url = reverse("runs:history")
    page = alice_client.get(url).content.decode()
    seen, pages = _run_ids(page), [_run_ids(page)]
    assert "Newer" not in _links(page) and len(seen) == paging.PAGE_SIZE
    while "Older" in _links(page):
        page = alice_client.get(url + _links(page)["Older"]).content.decode()
        pages.append(_run_ids(page))
        seen += pages[-1]
    expected = sorted(runs, key=lambda r: (r.created_at, r.pk), reverse=True)
    assert seen == [str(r.pk) for r in expected]  # newest first, none twice, none missed
    assert len(pages) == 3 and len(pages[-1]) == 10
    back = alice_client.get(url + _links(page)["Newer"]).content.decode()
    assert _run_ids(back) == pages[1]
    again = alice_client.get(url + _links(back)["Newer"]).content.decode()
    assert _run_ids(again) == pages[0] and "Newer" not in _links(again)


@pytest.mark.parametrize(
    "cursor", ["nonsense", "2026-13-01T00:00:00+00:00_x", "2026-11-01T00:00:00_" + "0" * 32, "_", "%00"]
)
def test_a_malformed_cursor_shows_the_newest_page_not_an_error(alice_client, alice, catalog, cursor):
    _make_runs(alice, catalog.latest_version, 3)
    for name in ("before", "after"):
        response = alice_client.get(reverse("runs:history"), {name: cursor})
        assert response.status_code == 200 and len(_run_ids(response.content.decode())) == 3


def test_no_page_counts_the_runs(alice_client, alice, catalog):
    _make_runs(alice, catalog.latest_version, 30)
    with CaptureQueriesContext(connection) as ctx:
        page = alice_client.get(reverse("runs:history")).content.decode()
        alice_client.get(reverse("runs:history") + _links(page)["Older"])
    assert not [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]


def test_date_filters_include_both_days_whole(alice_client, alice, catalog):
    version = catalog.latest_version
    stamps = ["2026-10-31T23:59:59", "2026-11-01T00:00:00", "2026-11-02T23:59:59", "2026-11-03T00:00:00"]
    for stamp in stamps:
        run = RunFactory(user=alice, workflow_version=version)
        Run.objects.filter(pk=run.pk).update(created_at=datetime.fromisoformat(stamp).replace(tzinfo=UTC))
    page = alice_client.get(reverse("runs:history"), {"since": "2026-11-01", "until": "2026-11-02"}).content.decode()
    assert page.count("Learn Agentic AI</a>") == 2


def test_filters_carry_over_to_the_next_page(alice_client, alice, catalog):
    for run in _make_runs(alice, catalog.latest_version, 30):
        Run.objects.filter(pk=run.pk).update(status=Status.FAILED)
    RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.SUCCEEDED)
    page = alice_client.get(reverse("runs:history"), {"status": "failed"}).content.decode()
    older = _links(page)["Older"]
    assert "status=failed" in older
    rest = alice_client.get(reverse("runs:history") + older).content.decode()
    assert len(_run_ids(rest)) == 5 and "Succeeded" not in rest.split("<tbody>")[1]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="reads SQLite's query plan")
@pytest.mark.parametrize("operator", [False, True])
def test_the_history_query_walks_an_index_without_sorting(alice, catalog, operator):
    from runs.access import visible_runs

    if operator:
        assign_role(alice, "Operator")
        alice = type(alice).objects.get(pk=alice.pk)
    for runs in (visible_runs(alice), visible_runs(alice).filter(status=Status.FAILED)):
        query = runs.order_by("-created_at", "-id")[:26].query
        sql, params = query.sql_with_params()
        with connection.cursor() as cursor:
            plan = " ".join(str(row) for row in cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
        assert "TEMP B-TREE" not in plan, plan
        assert re.search(r"run_(user_|status_)?recent", plan), plan


def test_operators_see_everyones_runs_and_students_their_own_on_every_page(client, catalog):
    student, operator = UserFactory(username="stu"), UserFactory(username="opa")
    assign_role(operator, "Operator")
    _make_runs(student, catalog.latest_version, 20)
    _make_runs(UserFactory(username="other"), catalog.latest_version, 20)
    client.force_login(operator)
    page = client.get(reverse("runs:history")).content.decode()
    rest = client.get(reverse("runs:history") + _links(page)["Older"]).content.decode()
    assert len(_run_ids(page)) + len(_run_ids(rest)) == 40
    client.force_login(student)
    page = client.get(reverse("runs:history")).content.decode()
    assert len(_run_ids(page)) == 20 and "Older" not in _links(page)


def test_a_cursor_is_read_back_as_it_was_written(alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version)
    assert paging.parse_cursor(paging.cursor(run)) == (run.created_at, run.pk)
    assert paging.parse_cursor(f"{date(2026, 1, 1).isoformat()}T00:00:00_{run.pk}") is None  # naive: refused
