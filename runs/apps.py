from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from .host import start_in_worker

        # Each django-q2 worker process starts its run host as soon as it is spawned.
        post_spawn.connect(start_in_worker, dispatch_uid="runs.host")
