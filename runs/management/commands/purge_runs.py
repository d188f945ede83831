from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runs.retention import parse_age, purge_runs


class Command(BaseCommand):
    help = "Delete finished runs (and their artifacts) older than an age; SQLite files shrink afterwards."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", default=f"{settings.RETENTION_DAYS}d", help="An age like 30d, 12h, 45m")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted")

    def handle(self, *args, **options):
        try:
            age = parse_age(options["older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        count = purge_runs(age, dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {count} run(s) older than {options['older_than']}.")
