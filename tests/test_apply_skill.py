"""Applying a skill to your own files (issue 25): `apply-skill` on the offline model runs the skill's first
script in the sandbox with the uploaded files, and what it writes to /outputs becomes the run's files."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from catalog.services import import_skills
from runs import sandbox
from runs.models import Run, RunFile, Status

from .sandbox_support import needs_sandbox

__all__ = ["needs_sandbox"]
pytestmark = pytest.mark.django_db
TEST_SKILLS = Path(__file__).parent / "support" / "skills"
CSV = "city,temp,rain\nOslo,4.5,20\nRome,15.2,5\nLima,19.0,1\n"


@pytest.fixture
def skills(catalog):
    import_skills(TEST_SKILLS, library="test-skills")


def runworkflow(*args: str) -> tuple[int, dict, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("runworkflow", *args, "--json", stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def a_pdf(pages: list[str]) -> bytes:
    """A small valid PDF with one line of text per page (no library needed to make it)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
        content = len(objects) + 2
        kids.append(f"{len(objects) + 1} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@pytest.mark.usefixtures("needs_sandbox", "skills")
def test_runworkflow_applies_a_skill_whose_script_turns_an_uploaded_csv_into_a_workbook(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(CSV)
    code, result, err = runworkflow(
        "apply-skill", "--mode", "test", "--input", "skill=xlsx-report", "--input", "task=A report, please",
        "--file", f"files={data}",
    )  # fmt: skip
    assert code == 0 and result["status"] == "succeeded", (result, err)
    paths = {a["name"]: Path(a["path"]) for a in result["artifacts"]}
    assert "report.xlsx" in paths and paths["report.xlsx"].read_bytes()[:2] == b"PK"  # an OOXML zip
    run = Run.objects.get(pk=result["run_id"])
    stored = RunFile.objects.get(run=run)
    assert stored.name == "data.csv" and Path(stored.file.path).read_text() == CSV
    assert run.inputs["files"][0]["sha256"] == stored.sha256
    trace = json.loads(paths["trace.json"].read_text())
    calls = [c for step in trace["steps"] for call in step["calls"] for c in call.get("tool_calls", [])]
    script = next(c for c in calls if c["name"] == "run_script")["result"]
    assert script["command"] == "python /skills/xlsx-report/scripts/csv_to_xlsx.py /inputs/data.csv"
    assert script["exit_code"] == 0 and "3 rows" in script["stdout"] and script["duration_ms"] > 0
    notes = paths["notes.md"].read_text()
    assert "/outputs/report.xlsx" in notes and "exit code 0" in notes
    assert result["tokens"]["total"] > 0 and len(calls) <= run.workflow_version.caps("test")["max_tool_calls"]
    assert not (Path(settings.DATA_DIR) / "sandbox" / str(run.pk)).exists()  # the workspace is gone


@pytest.mark.usefixtures("needs_sandbox", "skills")
def test_a_pdf_skill_reads_an_uploaded_pdf_with_pypdf_and_writes_a_new_pdf_and_its_text(tmp_path):
    pdf = tmp_path / "Two Pages.pdf"
    pdf.write_bytes(a_pdf(["First page here", "Second page here"]))
    code, result, err = runworkflow(
        "apply-skill", "--input", "skill=pdf-pages", "--input", "task=Keep page one", "--file", f"files={pdf}"
    )
    assert code == 0, (result, err)
    paths = {a["name"]: Path(a["path"]) for a in result["artifacts"]}
    assert paths["first-page.pdf"].read_bytes().startswith(b"%PDF")
    text = paths["text.txt"].read_text()
    assert "First page here" in text and "Second page here" in text
    assert Run.objects.get(pk=result["run_id"]).files.get().name == "Two_Pages.pdf"


@pytest.mark.usefixtures("needs_sandbox", "skills")
def test_a_full_run_after_a_test_run_needs_the_same_file_contents(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(CSV)
    common = ["apply-skill", "--input", "skill=xlsx-report", "--input", "task=Report"]
    assert runworkflow(*common, "--mode", "test", "--file", f"files={data}")[0] == 0
    data.write_text(CSV + "Nuuk,-2.0,9\n")  # same name, other contents: another input
    code, result, _ = runworkflow(*common, "--mode", "full", "--file", f"files={data}")
    assert code == 3 and "test run" in result["reason"].lower(), result
    data.write_text(CSV)
    code, result, _ = runworkflow(*common, "--mode", "full", "--file", f"files={data}")
    assert code == 0, result


@pytest.mark.usefixtures("skills")
def test_file_limits_are_checked_before_any_run_is_made(tmp_path, settings):
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ" + b"\0" * 10)
    settings.RUN_FILE_MAX_BYTES = 1024
    big = tmp_path / "big.csv"
    big.write_text("x" * 2048)
    code, result, _ = runworkflow("apply-skill", "--input", "skill=xlsx-report", "--file", f"files={big}")
    assert code == 2 and "larger than" in result["reason"]
    files = [f"--file=files={tmp_path / f'f{n}.csv'}" for n in range(6)]
    for n in range(6):
        (tmp_path / f"f{n}.csv").write_text("a\n")
    code, result, _ = runworkflow("apply-skill", "--input", "skill=xlsx-report", *files)
    assert code == 2 and "at most 5 files" in result["reason"]
    code, result, _ = runworkflow("apply-skill", "--input", "skill=xlsx-report", "--file", f"task={exe}")
    assert code == 2 and "does not take files" in result["reason"]
    assert not Run.objects.exists()


@pytest.mark.usefixtures("skills")
def test_inputs_that_name_a_file_never_uploaded_are_refused(alice):
    from catalog.models import Workflow
    from runs.services import start_run

    version = Workflow.objects.get(slug="apply-skill").current_version
    forged = {"name": "x.csv", "sha256": "a" * 64, "size": 3, "type": "text/csv"}
    from catalog.inputs import InputError

    with pytest.raises(InputError, match="not uploaded"):
        start_run(workflow_version=version, user=alice, inputs={"skill": "xlsx-report", "files": [forged]}, mode="test")
    assert not Run.objects.exists()


@pytest.mark.usefixtures("skills")
def test_validate_refuses_a_code_run_where_the_sandbox_cannot_run_and_says_why(settings, tmp_path):
    settings.SANDBOX_PYTHON = str(tmp_path / "missing" / "bin" / "python")
    sandbox.unavailable.cache_clear()
    try:
        code, result, _ = runworkflow("apply-skill", "--mode", "validate", "--input", "skill=xlsx-report")
    finally:
        sandbox.unavailable.cache_clear()
    assert code == 1 and result["status"] == Status.FAILED
    assert "runs code" in result["reason"] and "make install" in result["reason"]


def run_with_files(user, files: dict[str, bytes]) -> Run:
    from catalog.file_inputs import Upload
    from catalog.models import Workflow
    from runs.services import start_run

    version = Workflow.objects.get(slug="apply-skill").current_version
    uploads = [Upload(name, data) for name, data in files.items()]
    descriptors = [{"name": u.name, "sha256": u.sha256, "size": len(u.data), "type": "x"} for u in uploads]
    return start_run(
        workflow_version=version, user=user, inputs={"skill": "xlsx-report", "files": descriptors}, mode="test",
        queue=False, files={u.sha256: u for u in uploads},
    )  # fmt: skip


@pytest.mark.usefixtures("needs_sandbox", "skills")
def test_read_file_pages_text_and_extracts_a_pdfs_text_in_the_sandbox(alice):
    from catalog.models import Skill
    from runs import run_tools
    from runs.workspace import Workspace

    run = run_with_files(alice, {"notes.txt": b"n" * 10_000, "doc.pdf": a_pdf(["Quarterly figures"])})
    skills = {"xlsx-report": Skill.objects.get(name="xlsx-report").latest}
    workspace = Workspace(run, skills, lambda: "")
    try:
        first, _ = run_tools.run("read_file", json.dumps({"path": "/inputs/notes.txt"}), skills, workspace, 60)
        assert first.startswith("n" * 100) and "read again with offset=6000" in first
        rest, _ = run_tools.run("read_file", '{"path": "/inputs/notes.txt", "offset": 6000}', skills, workspace, 60)
        assert rest == "n" * 4000
        text, _ = run_tools.run("read_file", json.dumps({"path": "/inputs/doc.pdf"}), skills, workspace, 60)
        assert "Quarterly figures" in text
        listing = json.loads(run_tools.run("list_files", "{}", skills, workspace, 60)[0])
        assert {f["path"] for f in listing["inputs"]} == {"/inputs/notes.txt", "/inputs/doc.pdf"}
    finally:
        workspace.close()


def test_outputs_past_the_count_and_size_limits_are_skipped_and_said(alice, catalog, tmp_path, settings):
    from catalog.models import Workflow
    from runs import files as run_files
    from runs.services import start_run

    version = Workflow.objects.get(slug="learn-agentic-ai").current_version
    run = start_run(workflow_version=version, user=alice, inputs={}, mode="test", queue=False)
    outputs = tmp_path / "outputs"
    (outputs / "sub").mkdir(parents=True)
    for name, size in (("a.txt", 10), ("b.txt", 10), ("sub/c.txt", 10), ("d.txt", 10)):
        (outputs / name).write_bytes(b"x" * size)
    settings.RUN_OUTPUT_MAX_FILES = 3
    settings.RUN_OUTPUT_MAX_BYTES = 25
    kept, skipped = run_files.collect_outputs(run, outputs, {"notes.md"})
    assert [k["artifact"] for k in kept] == ["a.txt", "b.txt"]
    assert skipped == ["d.txt: past the 25-byte limit on all files", "sub/c.txt: past the 25-byte limit on all files"]
