from django.core.management.base import BaseCommand

from settings_app.roles import setup_roles


class Command(BaseCommand):
    help = "Create or update the Student, Operator and Admin groups and their permissions."

    def handle(self, *args, **options):
        self.stdout.write(f"Roles: {', '.join(setup_roles())}.")
