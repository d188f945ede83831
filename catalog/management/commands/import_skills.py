from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.services import import_skills


class Command(BaseCommand):
    help = "Import every Agent Skill (a folder with SKILL.md) under PATH. Nothing under scripts/ is ever run."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--verbose-warnings", action="store_true", help="List every warning")

    def handle(self, *args, **options):
        root = Path(options["path"])
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder.")
        report = import_skills(root)
        self.stdout.write(report.summary() + ".")
        for line in report.skipped:
            self.stdout.write(f"  skipped: {line}")
        if report.warnings:
            self.stdout.write(
                f"  {len(report.warnings)} warning(s) (names that differ from folders, oversized references, …)"
            )
            if options["verbose_warnings"]:
                for line in report.warnings:
                    self.stdout.write(f"  warning: {line}")
