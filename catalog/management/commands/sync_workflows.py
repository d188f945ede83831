from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.services import sync_workflows
from catalog.specs import SpecError


class Command(BaseCommand):
    help = "Load the workflow specs in workflows/ (and the project's skills) into the catalog."

    def add_arguments(self, parser):
        parser.add_argument("--workflows-dir", default=str(settings.WORKFLOWS_DIR))
        parser.add_argument("--skills-dir", default=str(settings.SKILLS_DIR))

    def handle(self, *args, **options):
        from pathlib import Path

        try:
            report = sync_workflows(
                workflows_dir=Path(options["workflows_dir"]), skills_dir=Path(options["skills_dir"])
            )
        except SpecError as exc:
            raise CommandError(f"No workflow was loaded:\n{exc}") from exc
        self.stdout.write(f"Workflows synced: {report.summary()}.")
