"""Files in and out through the web form and the API (issue 25): upload on the form, the run page lists the
files given and the files made (text and images previewed, nothing served as something a browser runs), the
zip holds both, and the API starts a run with files as multipart."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from api.tokens import create_token
from catalog.models import Workflow
from catalog.services import import_skills
from runs import pipeline
from runs.models import Run, RunFile, Status

from .sandbox_support import needs_sandbox
from .test_apply_skill import CSV, TEST_SKILLS

__all__ = ["needs_sandbox"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def skills(catalog):
    import_skills(TEST_SKILLS, library="test-skills")


@pytest.fixture
def many_outputs_skill(catalog, tmp_path):
    """A skill whose script writes a chart, a table, an HTML page, a shell script and a symlink to a secret."""
    folder = tmp_path / "lib" / "many-outputs"
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_text("---\nname: many-outputs\ndescription: Writes files of many kinds.\n---\n# Many\n")
    (folder / "scripts" / "make.py").write_text(
        textwrap.dedent(
            """
            import os
            import matplotlib.pyplot as plt
            plt.plot([1, 2, 3], [2, 1, 3]); plt.savefig("/outputs/chart.png")
            open("/outputs/table.csv", "w").write("a,b\\n1,2\\n")
            open("/outputs/page.html", "w").write("<script>alert(1)</script>")
            open("/outputs/tool.sh", "w").write("#!/bin/sh\\nrm -rf /\\n")
            os.symlink("/etc/passwd", "/outputs/passwd")
            """
        )
    )
    import_skills(tmp_path / "lib")


def start_on_the_form(client: Client, skill: str, files: list[SimpleUploadedFile]) -> Run:
    response = client.post(
        "/workflows/apply-skill/", {"skill": skill, "task": "Do it", "files": files, "mode": "test"}, follow=False
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Run.objects.latest("created_at")


@pytest.mark.usefixtures("needs_sandbox", "skills")
def test_the_form_takes_files_and_the_run_page_and_zip_hold_the_files_given_and_made(alice_client):
    page = alice_client.get("/workflows/apply-skill/").content.decode()
    assert 'enctype="multipart/form-data"' in page and 'type="file"' in page and "multiple" in page
    run = start_on_the_form(alice_client, "xlsx-report", [SimpleUploadedFile("data.csv", CSV.encode(), "text/csv")])
    assert run.files.get().name == "data.csv"
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Files given" in page and "data.csv" in page
    assert "report.xlsx" in page and "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" in page
    given = alice_client.get(f"/runs/{run.pk}/inputs/data.csv")
    assert given["Content-Type"] == "application/octet-stream" and b"".join(given.streaming_content).decode() == CSV
    archive = zipfile.ZipFile(io.BytesIO(alice_client.get(f"/runs/{run.pk}/artifacts.zip").content))
    assert {"inputs/data.csv", "report.xlsx", "notes.md", "trace.json"} <= set(archive.namelist())


@pytest.mark.usefixtures("skills")
def test_an_upload_past_its_limits_is_refused_beside_its_field_and_creates_nothing(alice_client, settings):
    settings.RUN_FILE_MAX_BYTES = 100
    response = alice_client.post(
        "/workflows/apply-skill/",
        {"skill": "xlsx-report", "task": "x", "files": [SimpleUploadedFile("big.csv", b"x" * 200)], "mode": "test"},
    )
    assert response.status_code == 422 and "big.csv is larger than" in response.content.decode()
    six = [SimpleUploadedFile(f"f{n}.csv", b"a\n") for n in range(6)]
    response = alice_client.post("/workflows/apply-skill/", {"skill": "xlsx-report", "task": "x", "files": six})
    assert response.status_code == 422 and "at most 5 files" in response.content.decode()
    assert not Run.objects.exists() and not RunFile.objects.exists()


@pytest.mark.usefixtures("needs_sandbox", "many_outputs_skill")
def test_outputs_are_previewed_as_text_or_image_and_never_served_as_something_a_browser_runs(alice_client):
    run = start_on_the_form(alice_client, "many-outputs", [])
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    names = set(run.artifacts.values_list("name", flat=True))
    assert {"chart.png", "table.csv", "page.html", "tool.sh"} <= names and "passwd" not in names  # no symlink
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'src="/runs/{run.pk}/preview/chart.png"' in page and "a,b\n1,2" in page
    assert "&lt;script&gt;" not in page.split("Files the run made", 1)[1].split("</section>", 1)[0]  # html not shown
    image = alice_client.get(f"/runs/{run.pk}/preview/chart.png")
    assert image["Content-Type"] == "image/png" and "sandbox" in image["Content-Security-Policy"]
    assert alice_client.get(f"/runs/{run.pk}/preview/page.html").status_code == 404
    for name in ("page.html", "tool.sh"):
        download = alice_client.get(f"/runs/{run.pk}/artifacts/{name}")
        assert (
            download["Content-Type"] == "application/octet-stream" and "attachment" in download["Content-Disposition"]
        )
    trace = json.loads(run.artifacts.get(name="trace.json").file.read())
    kept = next(e for e in trace["events"] if e["kind"] == "outputs")
    assert any("passwd: not a regular file" in s for s in kept["skipped"])


@pytest.mark.usefixtures("needs_sandbox", "skills")
def test_the_api_starts_a_run_with_files_as_multipart_and_lists_what_it_made(alice):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='run').secret}")
    run_json = json.dumps({"workflow": "apply-skill", "mode": "test", "inputs": {"skill": "xlsx-report", "task": "x"}})
    response = api.post(
        "/api/v1/runs/upload", {"run": run_json, "files": [SimpleUploadedFile("data.csv", CSV.encode())]}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["inputs"]["files"][0]["name"] == "data.csv" and len(body["inputs"]["files"][0]["sha256"]) == 64
    pipeline.execute(body["id"])
    listed = api.get(f"/api/v1/runs/{body['id']}/artifacts").json()
    assert "report.xlsx" in {a["name"] for a in listed["items"]}
    xlsx = api.get(f"/api/v1/runs/{body['id']}/artifacts/report.xlsx")
    assert b"".join(xlsx.streaming_content)[:2] == b"PK"


@pytest.mark.usefixtures("skills")
def test_the_api_refuses_a_bad_multipart_run_with_json_errors_and_creates_nothing(alice):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='run').secret}")
    assert api.post("/api/v1/runs/upload", {"run": "not json"}).json()["code"] == "invalid_request"
    run_json = json.dumps({"workflow": "apply-skill", "inputs": {"skill": "xlsx-report"}})
    wrong = api.post("/api/v1/runs/upload", {"run": run_json, "task": [SimpleUploadedFile("a.csv", b"a")]})
    assert wrong.status_code == 422 and "does not take files" in json.dumps(wrong.json())
    forged = {"name": "x.csv", "sha256": "b" * 64, "size": 1, "type": "text/csv"}
    run_json = json.dumps({"workflow": "apply-skill", "inputs": {"skill": "xlsx-report", "files": [forged]}})
    assert api.post("/api/v1/runs/upload", {"run": run_json}).status_code == 422
    assert not Run.objects.exists()
    assert Workflow.objects.filter(slug="apply-skill").exists()


def test_run_files_live_with_the_run_so_retention_purges_them(alice, catalog):
    from datetime import timedelta

    from django.utils import timezone

    from catalog.file_inputs import Upload
    from runs import retention
    from runs.services import start_run

    import_skills(TEST_SKILLS)
    version = Workflow.objects.get(slug="apply-skill").current_version
    upload = Upload("d.csv", b"a,b\n")
    descriptor = {"name": "d.csv", "sha256": upload.sha256, "size": 4, "type": "text/csv"}
    run = start_run(
        workflow_version=version, user=alice, inputs={"skill": "xlsx-report", "files": [descriptor]}, mode="test",
        queue=False, files={upload.sha256: upload},
    )  # fmt: skip
    stored = Path(run.files.get().file.path)
    assert stored.exists()
    Run.objects.filter(pk=run.pk).update(status=Status.FAILED, created_at=timezone.now() - timedelta(days=40))
    assert retention.purge(timedelta(days=30)).runs == 1
    assert not stored.exists() and not RunFile.objects.exists()
