from django.core.management.base import BaseCommand, CommandError

from providers.crypto import EncryptionNotConfigured, SecretUnreadable
from providers.services import rotate_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider key under the primary (first) key of FIELD_ENCRYPTION_KEYS. "
        "Put the new key first and keep the old ones after it until this has run."
    )

    def handle(self, *args, **options):
        try:
            count = rotate_keys()
        except (SecretUnreadable, EncryptionNotConfigured) as exc:
            raise CommandError(f"Nothing was changed: {exc}") from exc
        self.stdout.write(f"Re-encrypted {count} provider key(s) under the primary key.")
