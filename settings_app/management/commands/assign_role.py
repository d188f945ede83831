from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from settings_app.roles import PERMISSIONS, RoleError, assign_role


class Command(BaseCommand):
    help = "Give a user a role: Student, Operator or Admin (creates the user, without a password, if missing)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=list(PERMISSIONS))

    def handle(self, *args, **options):
        user, created = get_user_model().objects.get_or_create(username=options["username"])
        if created:
            user.set_unusable_password()
            user.save()
        try:
            assign_role(user, options["role"])
        except RoleError as exc:
            raise CommandError(str(exc)) from exc
        note = " (new user: set a password with `manage.py changepassword`)" if created else ""
        self.stdout.write(f"{user.username} is now {options['role']}{note}.")
