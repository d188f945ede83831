from django.core.management.base import BaseCommand, CommandError

from providers.crypto import EncryptionNotConfigured
from providers.services import ConnectionError_, import_environment


class Command(BaseCommand):
    help = (
        "Create or update encrypted connections from OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY and "
        "DEEPSEEK_API_KEY (with <PROVIDER>_API_BASE for a custom base URL)."
    )

    def handle(self, *args, **options):
        try:
            connections = import_environment()
        except (ConnectionError_, EncryptionNotConfigured) as exc:
            raise CommandError(str(exc)) from exc
        if connections:
            names = ", ".join(c.get_provider_display() for c in connections)
            self.stdout.write(f"Connections from the environment: {names}.")
