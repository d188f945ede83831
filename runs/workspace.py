"""A run's sandbox workspace: what its code sees and where it writes (docs/security.md, "Code sandbox").

    /skills/<name>/   the run's skills, read-only: SKILL.md and every text file, as the run's skill version has them
    /inputs/<file>    the run's input files, read-only
    /work             scratch, writable, kept between the run's executions (the current folder)
    /outputs          writable: what is here when the run ends becomes artifacts (runs/files.py)
    /tmp              a small tmpfs of its own

On the host it lives under DATA_DIR/sandbox/<run id>/ and is deleted when the run ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from catalog.models import SkillVersion

from . import sandbox
from .models import Run, RunFile

CODE_SUFFIXES = {".py": "python", ".sh": "bash"}


class Workspace:
    def __init__(self, run: Run, skills: dict[str, SkillVersion], should_stop: Callable[[], str]) -> None:
        self.run = run
        self.skills = skills
        self.should_stop = should_stop
        self.root = Path(settings.DATA_DIR) / "sandbox" / str(run.pk)
        self.executions = 0
        self._ready = False
        self._files: list[RunFile] | None = None

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def input_files(self) -> list[RunFile]:
        if self._files is None:
            self._files = list(RunFile.objects.filter(run=self.run))
        return self._files

    def prepare(self) -> None:
        if self._ready:
            return
        for folder in (self.work, self.outputs):
            sandbox.owned_by_sandbox(folder)
        for name, version in self.skills.items():
            _materialize(version, self.root / "skills" / name)
        self._ready = True

    def mounts(self) -> list[sandbox.Mount]:
        mounts = [sandbox.Mount(self.root / "skills" / name, f"/skills/{name}") for name in self.skills]
        mounts += [sandbox.Mount(Path(f.file.path), f"/inputs/{f.name}") for f in self.input_files()]
        mounts += [sandbox.Mount(self.work, "/work", writable=True), sandbox.Mount(self.outputs, "/outputs", True)]
        return mounts

    def execute(self, argv: list[str], limits: sandbox.Limits, remaining: float) -> sandbox.Result:
        """Run argv in the sandbox, within the run's remaining time."""
        self.prepare()
        self.executions += 1
        limits = replace(limits, wall_seconds=max(1.0, min(limits.wall_seconds, remaining)))
        return sandbox.run(
            argv,
            mounts=self.mounts(),
            limits=limits,
            writable=[self.work, self.outputs],
            should_stop=self.should_stop,
        )

    def output_listing(self) -> list[dict[str, Any]]:
        if not self.outputs.is_dir():
            return []
        return [
            {"path": f"/outputs/{p.relative_to(self.outputs)}", "bytes": p.lstat().st_size}
            for p in sorted(self.outputs.rglob("*"))
            if p.is_file() and not p.is_symlink()
        ]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _materialize(version: SkillVersion, folder: Path) -> None:
    """Write the skill version's files (its stored text, not the source folder, which may have changed since)."""
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    front = {k: v for k, v in (version.metadata or {}).items() if isinstance(k, str)}
    front = {"name": version.skill.name, "description": version.skill.description, **front}
    skill_md = f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}---\n\n{version.body}"
    (folder / "SKILL.md").write_text(skill_md, encoding="utf-8")
    for relative, text in version.references.items():
        target = (folder / relative).resolve()
        if not target.is_relative_to(root):  # paths were normalized at import: this is a second guard
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if target.suffix in CODE_SUFFIXES:
            target.chmod(0o755)


def scripts_of(version: SkillVersion) -> list[str]:
    """The skill's runnable scripts, sorted by path."""
    return sorted(path for path in version.references if Path(path).suffix in CODE_SUFFIXES)
