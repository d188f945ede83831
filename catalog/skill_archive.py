"""Unpacking an uploaded zip of a skill library, safely: the archive is refused whole at the first entry
that would escape the destination (absolute names, `..`, drive letters, backslashes), that is a symlink or
anything but a file or folder, or past the size and file-count limits (counted over all entries, on what the
archive claims and again on the bytes actually written, so a zip bomb stops at the limit). A damaged or
encrypted archive, a name that is not valid UTF-8 or too long for a file system, and a name that is both a
file and a folder are refused with the reason, never a server error."""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .skills import slugify

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 5000
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TOTAL_BYTES = 200 * 1024 * 1024  # over all entries together
MAX_NAME_BYTES = 255  # one file or folder name (what Linux file systems hold)
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
    except UnicodeDecodeError:
        raise ArchiveError("an entry is marked as UTF-8 but its name is not valid UTF-8") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"not a zip file ({exc})") from None
    dest.mkdir(parents=True)
    try:
        with archive:
            _extract_all(archive, dest)
    except BaseException as exc:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError | NotImplementedError):  # a damaged entry
            raise ArchiveError(f"the archive is damaged ({exc})") from None
        raise


def _check_entry(info: zipfile.ZipInfo, parts: list[str]) -> None:
    if info.flag_bits & 0x1:
        raise ArchiveError(f"'{info.filename}' is encrypted; encrypted archives are refused")
    long = next((p for p in parts if len(p.encode()) > MAX_NAME_BYTES), None)
    if long is not None:
        raise ArchiveError(f"'{long[:40]}…' is a name longer than {MAX_NAME_BYTES} bytes")


def _plan(entries: list[zipfile.ZipInfo]) -> list[tuple[zipfile.ZipInfo, list[str], str]]:
    """Every entry checked before anything is written: the archive is refused whole or extracted whole."""
    if len(entries) > MAX_ENTRIES:
        raise ArchiveError(f"{len(entries)} entries; at most {MAX_ENTRIES} are accepted")
    plan = [(info, _safe_parts(info.filename), _kind(info)) for info in entries]
    declared = 0
    files: set[str] = set()
    folders: set[str] = set()
    for info, parts, kind in plan:
        _check_entry(info, parts)
        declared += info.file_size  # what the archive claims, over all entries; the bytes written count too
        if declared > MAX_TOTAL_BYTES:
            raise ArchiveError(f"the archive is larger than {MAX_TOTAL_BYTES // 2**20} MiB unpacked")
        path = "/".join(parts)
        folders.update("/".join(parts[:n]) for n in range(1, len(parts)))
        (folders if kind == "dir" else files).add(path)
    clash = sorted(files & folders)
    if clash:
        raise ArchiveError(f"'{clash[0]}' is both a file and a folder in the archive")
    return plan


def _extract_all(archive: zipfile.ZipFile, dest: Path) -> None:
    plan = _plan(archive.infolist())
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
