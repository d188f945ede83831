"""Retention: finished runs older than a configured age are deleted with their files and cached responses.
A file that cannot be deleted is reported (a warning each, and in the result), never skipped silently."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import FINISHED, Run

log = logging.getLogger(__name__)


@dataclass
class Purged:
    runs: int = 0
    not_deleted: list[str] = field(default_factory=list)  # "path: why" for each file that stayed


def purge(older_than: timedelta, *, dry_run: bool = False) -> Purged:
    """Delete finished runs created before now - older_than, their cached LLM responses (they cascade with
    the run) and their artifact folders. Reports every file it could not delete."""
    cutoff = timezone.now() - older_than
    runs = Run.objects.filter(created_at__lt=cutoff, status__in=FINISHED)
    ids = [str(pk) for pk in runs.values_list("pk", flat=True)]
    result = Purged(runs=len(ids))
    if dry_run or not ids:
        return result

    def failed(_function: object, path: str, exc_info: tuple[type[BaseException], BaseException, object]) -> None:
        result.not_deleted.append(f"{path}: {exc_info[1]}")
        log.warning("retention could not delete %s: %s", path, exc_info[1])

    with transaction.atomic():
        Run.objects.filter(pk__in=ids).delete()
    for run_id in ids:
        folder = Path(settings.MEDIA_ROOT) / "runs" / run_id
        if folder.exists():
            shutil.rmtree(folder, onerror=failed)
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with connection.cursor() as cursor:  # give the space back: the file shrinks
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # in WAL mode the shrink lands at a checkpoint
    log.info("purged %d run(s) older than %s", len(ids), older_than)
    return result


def purge_runs(older_than: timedelta, *, dry_run: bool = False) -> int:
    """`purge`, counting runs only (files it could not delete are still logged as warnings)."""
    return purge(older_than, dry_run=dry_run).runs


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '45m' → a timedelta; ValueError otherwise."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"'{text}' is not an age like 30d, 12h or 45m")
    return timedelta(**{units[unit]: int(number)})
