import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from settings_app.roles import ADMIN, assign_role


class Command(BaseCommand):
    help = (
        "Make sure a person can log in: create a local admin when there is no superuser. The password comes "
        "from DJANGO_ADMIN_PASSWORD, or is generated and printed once."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write("An admin account exists; log in with it.")
            return
        username = os.environ.get("DJANGO_ADMIN_USER", "admin")
        password = os.environ.get("DJANGO_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        assign_role(user, ADMIN)
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the admin account '{username}' with the password: {password}\n"
                    "It is shown this once: note it now (or set DJANGO_ADMIN_PASSWORD next time)."
                )
            )
        else:
            self.stdout.write(f"Created the admin account '{username}' with the password from DJANGO_ADMIN_PASSWORD.")
