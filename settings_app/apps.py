from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    name = "settings_app"
    verbose_name = "Platform settings"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
