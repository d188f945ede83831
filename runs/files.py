"""A run's files: the ones given as inputs (stored with the run under runs/<id>/inputs/, so the zip and
retention cover them) and the ones its code wrote to outputs/ (kept as artifacts, within limits).

A run's inputs hold a descriptor per file (catalog/file_inputs.py) with its SHA-256; the bytes travel beside
the inputs as `Upload`s keyed by that hash. A descriptor without the bytes behind it is refused, so an API
client cannot name a file it never sent (nor guess its way into someone else's).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile

from catalog import file_inputs
from catalog.file_inputs import FileRule, Upload
from catalog.inputs import InputError

from .models import Artifact, Run, RunFile

_ARTIFACT_NAME = re.compile(r"[^a-z0-9_.-]+")


def uploads_for(schema: dict[str, Any], given: dict[str, list[Upload]]) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Input values (descriptors) and the bytes by hash for files given per input name; InputError by field
    for an unknown input, too many files, a file too large or of a type the input does not take."""
    rules: dict[str, FileRule] = file_inputs.file_rules(schema)
    values: dict[str, Any] = {}
    blobs: dict[str, Upload] = {}
    errors: dict[str, str] = {}
    for name, uploads in given.items():
        rule = rules.get(name)
        if rule is None:
            errors[name] = "This input does not take files." if name in schema["properties"] else "Unknown input."
            continue
        value, problem = file_inputs.describe(rule, uploads)
        if problem:
            errors[name] = problem
            continue
        values[name] = value
        blobs.update({upload.sha256: upload for upload in uploads})
    if errors:
        raise InputError(errors)
    return values, blobs


def check_backed(schema: dict[str, Any], values: dict[str, Any], blobs: dict[str, Upload]) -> None:
    missing = {name: d["name"] for name, d in file_inputs.descriptors(schema, values) if d["sha256"] not in blobs}
    if missing:
        raise InputError(
            {name: f"The file {filename} was not uploaded with the run." for name, filename in missing.items()}
        )


def attach(run: Run, schema: dict[str, Any], blobs: dict[str, Upload]) -> None:
    """Store the files the run's inputs name (called in the transaction that creates the run)."""
    taken: set[str] = set()
    for name, descriptor in file_inputs.descriptors(schema, run.inputs):
        upload = blobs[descriptor["sha256"]]
        filename = descriptor["name"] if descriptor["name"] not in taken else f"{name}-{descriptor['name']}"
        taken.add(filename)
        row = RunFile(
            run=run,
            input=name,
            name=filename,
            size=len(upload.data),
            sha256=descriptor["sha256"],
            content_type=descriptor["type"],
        )
        row.file.save(filename, ContentFile(upload.data), save=False)
        row.save()


def blobs_of(run: Run) -> dict[str, Upload]:
    """The files of an earlier run, for a run started from it (Run full, Rerun, Resume, Replay)."""
    blobs = {}
    for row in run.files.all():
        with row.file.open("rb") as handle:
            blobs[row.sha256] = Upload(row.name, handle.read())
    return blobs


# -- files out --------------------------------------------------------------------------------------------------


def artifact_name(relative: str, taken: set[str]) -> str:
    """outputs/Report 2.xlsx → report_2.xlsx (the download allowlist's form), never a name already used."""
    name = _ARTIFACT_NAME.sub("_", relative.replace("/", "-").lower()).strip("._-")[:70] or "output"
    while name in taken or name in ("trace.json", "validation.json"):
        name = f"output-{name}"[:80]
    return name


def collect_outputs(run: Run, outputs: Path, taken: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep the regular files under `outputs` as artifacts, within the count and size limits. Symbolic links,
    devices and pipes are skipped (never followed: the code chose where they point). Returns what was kept
    and what was not, with why."""
    kept: list[dict[str, Any]] = []
    skipped: list[str] = []
    total = 0
    if not outputs.is_dir():
        return kept, skipped
    for root, dirs, names in os.walk(outputs, followlinks=False):
        dirs.sort()
        for filename in sorted(names):
            path = Path(root) / filename
            relative = str(path.relative_to(outputs))
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                skipped.append(f"{relative}: not a regular file")
                continue
            if len(kept) >= settings.RUN_OUTPUT_MAX_FILES:
                skipped.append(f"{relative}: past the {settings.RUN_OUTPUT_MAX_FILES}-file limit")
                continue
            if total + info.st_size > settings.RUN_OUTPUT_MAX_BYTES:
                skipped.append(f"{relative}: past the {settings.RUN_OUTPUT_MAX_BYTES:,}-byte limit on all files")
                continue
            data = _read_no_follow(path)
            if data is None:
                skipped.append(f"{relative}: could not be read")
                continue
            name = artifact_name(relative, taken)
            taken.add(name)
            Artifact.write(run, name, data)
            total += len(data)
            kept.append({"path": f"outputs/{relative}", "artifact": name, "bytes": len(data)})
    return kept, skipped


def _read_no_follow(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(settings.RUN_OUTPUT_MAX_BYTES + 1)
