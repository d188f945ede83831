from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.services import import_skills


class Command(BaseCommand):
    help = (
        "Import every Agent Skill (a folder with SKILL.md) under PATH: one line per skill (imported, updated, "
        "unchanged, or skipped and why), then a summary. Nothing in a skill is ever run."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--library", default="", help="The library name shown in the catalog (default: folder)")
        parser.add_argument("--verbose-warnings", action="store_true", help="List every warning")

    def handle(self, *args, **options):
        root = Path(options["path"])
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder.")
        report = import_skills(root, library=options["library"])
        for line in report.lines:
            self.stdout.write(line)
        if report.warnings:
            if options["verbose_warnings"]:
                for line in report.warnings:
                    self.stdout.write(f"  warning: {line}")
            else:
                self.stdout.write(f"{len(report.warnings)} warning(s): --verbose-warnings lists them")
        self.stdout.write(report.summary() + ".")
