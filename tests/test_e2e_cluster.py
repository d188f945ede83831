"""The whole path with real parts: HTTP to the web views, a real qcluster subprocess, files on disk."""

from __future__ import annotations

import pytest
from django.conf import settings

from catalog.services import sync_workflows
from runs.models import Run, Status

from .factories import UserFactory
from .support import web
from .support.processes import start_qcluster, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(tmp_path):
    process = start_qcluster(tmp_path / "qcluster.log")
    yield process
    stop(process)


def test_a_run_submitted_on_the_web_is_executed_by_a_real_qcluster(live_server, cluster, tmp_path):
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    UserFactory(username="alice")
    client = web.login(live_server.url, "alice", "correct horse battery staple")
    run_path = web.submit(
        client,
        "learn-agentic-ai",
        {"topic": "Tool use", "level": "beginner", "session_minutes": "30", "focus": ["tool-use"], "mode": "test"},
    )
    run = Run.objects.get()
    assert run_path == f"/runs/{run.pk}/"

    # Poll the way the page does: the status fragment, until it stops asking to be polled.
    def finished() -> bool:
        fragment = client.get(f"{run_path}status/")
        assert fragment.status_code == 200
        return 'id="run-body"' in fragment.text and "hx-trigger" not in fragment.text

    wait_for(
        finished,
        timeout=40,
        message=f"the run to finish (log: {tmp_path / 'qcluster.log'})",
    )
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    assert (run.started_at - run.created_at).total_seconds() < 2, "the run did not start within 2 s"
    page = client.get(run_path).text
    assert "Succeeded" in page and "<h1>Learn Agentic AI: Tool use</h1>" in page
    download = client.get(f"{run_path}artifacts/notes.md")
    assert download.status_code == 200 and download.text.startswith("# Learn Agentic AI: Tool use")
    assert client.get(f"{run_path}artifacts/trace.json").json()["run"]["status"] == "succeeded"
