"""Database faults met with real connections (issue 21): the pooled connections of a host, a connection the
server terminates, the lock order of reservations, recovery racing a run's own end, and a full disk."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
import zipfile
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from api.tokens import create_token
from providers import services as provider_services
from providers.models import ProviderConnection
from runs import dbpool, money, pipeline, services
from runs.models import Mode, Run, Status
from runs.recovery import recover_stale_runs

from .support.processes import wait_for

on_postgresql = pytest.mark.skipif(
    "not os.environ.get('DATABASE_URL', '').startswith('postgres')", reason="PostgreSQL sessions and row locks"
)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_for(lambda: not _alive(pid), timeout=5, message="the session to end")


def _alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def in_thread(function):
    """Run `function` in a new thread with its own connection; return its result or raise its error."""
    box: dict = {}

    def target():
        try:
            box["value"] = function()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def queued_run(catalog, user) -> Run:
    return services.start_run(
        workflow_version=catalog.latest_version, user=user, inputs={}, mode=Mode.TEST, queue=False
    )  # fmt: skip


@pytest.fixture
def stand_in_connection(db) -> ProviderConnection:
    provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="Locks", api_key="sk-locks-0123456789abcdef",
        api_base="http://127.0.0.1:9/v1", allow_private_network=True,
    )  # fmt: skip
    return ProviderConnection.objects.get()


# -- the pool -----------------------------------------------------------------------------------------------
@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_run_thread_holds_no_connection_while_it_waits_and_gets_a_working_one_back(settings):
    settings.RUN_DB_CONNECTIONS = 1
    dbpool._pool = None  # a pool of one, so the waiting thread's connection must be the one others get

    def waiting_run():
        with dbpool.borrowed():
            mine = backend_pid()
            with dbpool.idle():
                # Another run's thread gets the one pooled connection while this one waits.
                other = in_thread(lambda: _borrow_and(backend_pid))
                terminate(mine)  # the server drops it while it sits in the pool
            return mine, other, backend_pid()  # a working connection again, after the wait

    try:
        mine, other, after = in_thread(waiting_run)
    finally:
        dbpool.pool().close()
        dbpool._pool = None
    assert other == mine and after != mine


def _borrow_and(function):
    with dbpool.borrowed():
        return function()


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_write_after_the_server_dropped_the_connection_is_retried_on_a_new_one(alice, catalog):
    run = queued_run(catalog, alice)

    def drop_own_connection_then_write():
        pid = backend_pid()
        in_thread(lambda: terminate(pid))  # the server ends this thread's session
        return dbpool.retrying(lambda: Run.objects.filter(pk=run.pk).update(reason="written"), what="test")

    assert in_thread(drop_own_connection_then_write) == 1
    assert Run.objects.get(pk=run.pk).reason == "written"


# -- item 7: one lock order ---------------------------------------------------------------------------------
@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_reservation_never_blocks_a_run_update_that_points_at_its_connection(
    alice, bob, catalog, stand_in_connection
):
    """A run update writing connection_id takes a KEY SHARE lock on the connection row: a reservation in
    flight on that connection must not hold it up (that wait, behind the heartbeat, was the deadlock)."""
    reserving, other = queued_run(catalog, alice), queued_run(catalog, bob)
    locked, release = threading.Event(), threading.Event()

    def reserve_and_hold():
        with transaction.atomic():
            money._lock_for_reservation(reserving, stand_in_connection)
            locked.set()
            release.wait(20)

    holder = threading.Thread(target=lambda: in_thread(reserve_and_hold))
    holder.start()
    try:
        assert locked.wait(20)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            started = time.monotonic()
            Run.objects.filter(pk=other.pk).update(connection_id=stand_in_connection.pk)
            assert time.monotonic() - started < 1
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        holder.join(30)


# -- R3: recovery's update is guarded by the status ----------------------------------------------------------
@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_recovery_never_overwrites_a_run_that_ended_while_recovery_looked_at_it(alice, catalog):
    run = queued_run(catalog, alice)
    Run.objects.filter(pk=run.pk).update(status=Status.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1))
    ending, commit = threading.Event(), threading.Event()

    def end_the_run_slowly():
        with transaction.atomic():  # the run's own final write, not yet committed when recovery looks
            Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, reason="Finished 2 steps.")
            ending.set()
            commit.wait(20)

    ender = threading.Thread(target=lambda: in_thread(end_the_run_slowly))
    ender.start()
    assert ending.wait(20)
    recovering = threading.Thread(target=lambda: box.append(in_thread(recover_stale_runs)))
    box: list = []
    recovering.start()
    # Recovery listed the run as running and now waits for its row: then the run's end commits.
    wait_for(_someone_waits_for_a_row_lock, timeout=20, message="recovery to wait for the run's row")
    commit.set()
    ender.join(20)
    recovering.join(20)
    assert box == [[]]
    run.refresh_from_db()
    assert (run.status, run.reason) == (Status.SUCCEEDED, "Finished 2 steps.")


def _someone_waits_for_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone() is not None


# -- item 9: a full disk --------------------------------------------------------------------------------------
@pytest.fixture
def full_disk(settings, tmp_path):
    """A real 64 KiB tmpfs, filled to the last byte, as the artifact directory (mounting needs root)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("a tmpfs cannot be mounted here (needs root)")
    try:
        handle = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(handle, b"x" * 4096)
        except OSError:
            pass
        finally:
            os.close(handle)
        settings.MEDIA_ROOT = str(mount)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.django_db
def test_a_full_disk_names_every_file_not_written_and_the_trace_is_still_served(catalog, alice, full_disk, client):
    run = queued_run(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "No space left on device" in run.reason
    for name in ("notes.md", "validation.json", "trace.json"):
        assert name in run.reason
    assert not run.artifacts.exists() and json.loads(run.trace_text)["run"]["reason"] == run.reason
    client.force_login(alice)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Download trace.json" in page and "Outline" in page  # the timeline is read from the kept trace
    download = client.get(f"/runs/{run.pk}/artifacts/trace.json")
    assert download.status_code == 200 and json.loads(b"".join(download.streaming_content))["run"]["id"] == str(run.pk)
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/runs/{run.pk}/artifacts.zip").content))
    assert archive.namelist() == ["trace.json"]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='read').secret}")
    listed = api.get(f"/api/v1/runs/{run.pk}/artifacts").json()
    assert [a["name"] for a in listed["items"]] == ["trace.json"]
    assert api.get(f"/api/v1/runs/{run.pk}/artifacts/trace.json").status_code == 200
