from django.core.management.base import BaseCommand
from django_q.models import Schedule

SCHEDULES = {
    # name: (function, schedule type, minutes)
    "recover-stale-runs": ("runs.tasks.recover_stale_runs", Schedule.MINUTES, 1),
    "purge-old-runs": ("runs.tasks.purge_old_runs", Schedule.DAILY, None),
    "rebuild-usage": ("runs.usage.rebuild", Schedule.DAILY, None),
}


class Command(BaseCommand):
    help = "Create or update the periodic tasks: stale-run recovery (every minute), retention, usage rollup (daily)."

    def handle(self, *args, **options):
        for name, (func, kind, minutes) in SCHEDULES.items():
            Schedule.objects.update_or_create(
                name=name, defaults={"func": func, "schedule_type": kind, "minutes": minutes, "repeats": -1}
            )
        self.stdout.write(f"Schedules: {', '.join(SCHEDULES)}.")
