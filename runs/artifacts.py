"""The artifacts a run shows: its files, plus trace.json kept in the database when the disk refused it
(a full or read-only artifact directory). The run page, its zip and the API all list them from here."""

from __future__ import annotations

import io
from typing import IO

from .models import Artifact, Run

TRACE = "trace.json"


class _KeptFile:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def open(self, mode: str = "rb") -> IO[bytes]:
        return io.BytesIO(self._data)


class KeptArtifact:
    """An artifact that exists only in the database; read like an Artifact (`name`, `size`, `file.open()`)."""

    content_type = "application/json"
    previewable = ""  # the trace: read on its own card, never previewed

    def __init__(self, name: str, text: str) -> None:
        data = text.encode()
        self.name = name
        self.size = len(data)
        self.file = _KeptFile(data)


def artifacts_of(run: Run) -> list[Artifact | KeptArtifact]:
    """The run's artifacts by name; uses a prefetched `run.artifacts` when there is one."""
    files: list[Artifact | KeptArtifact] = list(run.artifacts.all())
    if run.trace_text and not any(a.name == TRACE for a in files):
        files.append(KeptArtifact(TRACE, run.trace_text))
        files.sort(key=lambda a: a.name)
    return files


def artifact_named(run: Run, name: str) -> Artifact | KeptArtifact | None:
    found = run.artifacts.filter(name=name).first()
    if found is None and name == TRACE and run.trace_text:
        return KeptArtifact(TRACE, run.trace_text)
    return found
