from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.services import sync_workflows


class Command(BaseCommand):
    help = "Load the workflow specs in workflows/ (and the project's skills) into the catalog."

    def add_arguments(self, parser):
        parser.add_argument("--workflows-dir", default=str(settings.WORKFLOWS_DIR))
        parser.add_argument("--skills-dir", default=str(settings.SKILLS_DIR))

    def handle(self, *args, **options):
        from pathlib import Path

        workflows_dir = Path(options["workflows_dir"])
        if not workflows_dir.is_dir():
            raise CommandError(f"No workflows folder at {workflows_dir}.")
        report = sync_workflows(workflows_dir=workflows_dir, skills_dir=Path(options["skills_dir"]))
        for problem in report.problems:  # one line each, so the start-up log shows what was set aside
            self.stderr.write(f"WARNING: set aside (see Admin → Workflow file problems): {problem}")
        for kept in report.kept:  # an operator's published version is never replaced silently
            self.stdout.write(f"Kept: {kept}.")
        self.stdout.write(f"Workflows synced: {report.summary()}.")
