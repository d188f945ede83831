from django.core.management.base import BaseCommand

from runs.usage import rebuild


class Command(BaseCommand):
    help = "Recompute the usage rollup (the usage page's figures) from the finished runs."

    def handle(self, *args, **options):
        self.stdout.write(f"Usage rollup rebuilt: {rebuild()} rows.")
