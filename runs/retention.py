"""Retention: finished runs older than a configured age are deleted with their files."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import FINISHED, Run

log = logging.getLogger(__name__)


def purge_runs(older_than: timedelta, *, dry_run: bool = False) -> int:
    """Delete finished runs created before now - older_than, and their artifact folders. Returns how many."""
    cutoff = timezone.now() - older_than
    runs = Run.objects.filter(created_at__lt=cutoff, status__in=FINISHED)
    ids = [str(pk) for pk in runs.values_list("pk", flat=True)]
    if dry_run or not ids:
        return len(ids)
    with transaction.atomic():
        Run.objects.filter(pk__in=ids).delete()
    for run_id in ids:
        shutil.rmtree(Path(settings.MEDIA_ROOT) / "runs" / run_id, ignore_errors=True)
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with connection.cursor() as cursor:  # give the space back: the file shrinks
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # in WAL mode the shrink lands at a checkpoint
    log.info("purged %d run(s) older than %s", len(ids), older_than)
    return len(ids)


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '45m' → a timedelta; ValueError otherwise."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"'{text}' is not an age like 30d, 12h or 45m")
    return timedelta(**{units[unit]: int(number)})
