from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runs.retention import parse_age, purge


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
        result = purge(age, dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {result.runs} run(s) older than {options['older_than']}.")
        if result.not_deleted:  # never silently: each file that stayed, then a non-zero exit
            for line in result.not_deleted:
                self.stderr.write(f"Could not delete {line}")
            raise CommandError(f"{len(result.not_deleted)} file(s) could not be deleted; see above.")
