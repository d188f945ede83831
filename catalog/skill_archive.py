"""Unpacking an uploaded zip of a skill library, safely: the archive is refused whole at the first entry
that would escape the destination (absolute names, `..`, drive letters, backslashes), that is a symlink or
anything but a file or folder, or past the size and file-count limits (counted on the bytes actually
written, not on what the archive claims, so a zip bomb stops at the limit)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .skills import slugify

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 5000
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TOTAL_BYTES = 200 * 1024 * 1024
_CHUNK = 64 * 1024


class ArchiveError(Exception):
    """A zip that is refused, with the reason (and the entry) named."""


def _safe_parts(name: str) -> list[str]:
    if "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"'{name}' is not a relative path inside the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(f"'{name}' climbs out of the archive with '..'")
    return parts


def _kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"'{info.filename}' is a symlink; archives with symlinks are refused")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # no type bits: a plain file
        raise ArchiveError(f"'{info.filename}' is not a file or a folder")
    return "dir" if info.is_dir() else "file"


def extract(upload: IO[bytes], dest: Path) -> None:
    """Extract into dest (created, must not exist). On any refusal dest is removed and ArchiveError raised."""
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"not a zip file ({exc})") from None
    dest.mkdir(parents=True)
    try:
        with archive:
            _extract_all(archive, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _extract_all(archive: zipfile.ZipFile, dest: Path) -> None:
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise ArchiveError(f"{len(entries)} entries; at most {MAX_ENTRIES} are accepted")
    plan = [(info, _safe_parts(info.filename), _kind(info)) for info in entries]  # refuse before writing
    real_dest = os.path.realpath(dest)
    total = 0
    for info, parts, kind in plan:
        if not parts:
            continue
        target = dest.joinpath(*parts)
        if os.path.commonpath([os.path.realpath(target.parent), real_dest]) != real_dest:
            raise ArchiveError(f"'{info.filename}' would be written outside the library")
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(target, flags, 0o644)
        except FileExistsError:
            raise ArchiveError(f"'{info.filename}' appears twice in the archive") from None
        written = 0
        with os.fdopen(fd, "wb") as out, archive.open(info) as source:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                total += len(chunk)
                if written > MAX_FILE_BYTES:
                    raise ArchiveError(f"'{info.filename}' is larger than {MAX_FILE_BYTES // 2**20} MiB unpacked")
                if total > MAX_TOTAL_BYTES:
                    raise ArchiveError(f"the archive is larger than {MAX_TOTAL_BYTES // 2**20} MiB unpacked")
                out.write(chunk)


def library_folder(root: Path, filename: str) -> tuple[Path, str]:
    """A new folder for an uploaded library under root, and the library's name (from the zip's name)."""
    name = slugify(Path(filename).stem)[:60] or "library"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return root / f"{name}-{stamp}", name
