"""The text of a run's file for `read_file`: UTF-8 files as they are; PDF, Word, Excel and PowerPoint files
through the sandbox's own libraries, *in the sandbox* (a parser bug on a hostile file then runs with no network
and nothing to steal), cached for the run. Never pasted into a prompt: the model reads it a page at a time."""

from __future__ import annotations

from pathlib import Path

from . import sandbox
from .tools import ToolError
from .workspace import Workspace

MAX_TEXT_CHARS = 2_000_000
EXTRACTABLE = (".pdf", ".docx", ".xlsx", ".pptx")
# Runs in the sandbox: argv[1] is the file, argv[2] where the text goes.
EXTRACTOR = r"""
import sys
src, dst = sys.argv[1], sys.argv[2]
ext = src.rsplit(".", 1)[-1].lower()
parts = []
if ext == "pdf":
    from pypdf import PdfReader
    for n, page in enumerate(PdfReader(src).pages, 1):
        parts.append(f"--- page {n} ---\n" + (page.extract_text() or ""))
elif ext == "docx":
    import docx
    d = docx.Document(src)
    parts += [p.text for p in d.paragraphs]
    for t in d.tables:
        parts += ["\t".join(c.text for c in row.cells) for row in t.rows]
elif ext == "xlsx":
    import openpyxl
    wb = openpyxl.load_workbook(src, read_only=True, data_only=True)
    for ws in wb.worksheets:
        parts.append(f"--- sheet {ws.title} ---")
        parts += ["\t".join("" if v is None else str(v) for v in row) for row in ws.iter_rows(values_only=True)]
elif ext == "pptx":
    import pptx
    for n, slide in enumerate(pptx.Presentation(src).slides, 1):
        parts.append(f"--- slide {n} ---")
        parts += [s.text_frame.text for s in slide.shapes if s.has_text_frame]
open(dst, "w", encoding="utf-8").write("\n".join(parts))
"""


def text_of(workspace: Workspace, path: str, remaining: float) -> str:
    path = path.strip()
    if path.startswith("/inputs/"):
        name = path.removeprefix("/inputs/")
        row = next((f for f in workspace.input_files() if f.name == name), None)
        if row is None:
            raise ToolError(f"No input file '{path}'. Call list_files first.")
        with row.file.open("rb") as handle:
            data = handle.read()
        text = _decode(data)
        if text is not None:
            return text
        if name.lower().endswith(EXTRACTABLE):
            return _extracted(workspace, name, remaining)
        raise ToolError(f"{path} is a {row.content_type} file with no text to read; code can open it (run_python).")
    if path.startswith("/outputs/"):
        target = (workspace.outputs / path.removeprefix("/outputs/")).resolve()
        if not target.is_relative_to(workspace.outputs.resolve()) or not target.is_file():
            raise ToolError(f"No output '{path}'. Call list_files first.")
        text = _decode(target.read_bytes()[: MAX_TEXT_CHARS * 4])
        if text is None:
            raise ToolError(f"{path} is not text; it is kept as a file of the run.")
        return text
    raise ToolError("Read a path under /inputs/ or /outputs/, as list_files gives it.")


def _decode(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")[:MAX_TEXT_CHARS]
    except UnicodeDecodeError:
        return None


def _extracted(workspace: Workspace, name: str, remaining: float) -> str:
    cache = workspace.root / "extracted"
    done = cache / f"{name}.txt"
    if not done.exists():
        sandbox.owned_by_sandbox(cache)
        mounts = [*workspace.mounts(), sandbox.Mount(cache, "/extracted", writable=True)]
        argv = [sandbox.PYTHON, "-c", EXTRACTOR, f"/inputs/{name}", f"/extracted/{name}.txt"]
        workspace.prepare()
        try:
            result = sandbox.run(
                argv,
                mounts=mounts,
                limits=sandbox.Limits(wall_seconds=max(1.0, min(60.0, remaining))),
                writable=[workspace.work, workspace.outputs, cache],
                should_stop=workspace.should_stop,
            )
        except sandbox.SandboxUnavailable as exc:
            raise ToolError(f"The text of {name} cannot be extracted here: {exc}") from None
        if not result.ok or not done.exists():
            last = (result.stderr.strip().splitlines() or result.notes or ["no output"])[-1]
            raise ToolError(f"The text of {name} could not be extracted: {last[:300]}")
    return Path(done).read_text(encoding="utf-8", errors="replace")[:MAX_TEXT_CHARS]
