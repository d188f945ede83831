from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from settings_app.roles import PERMISSIONS, RoleError, assign_role


class Command(BaseCommand):
    help = "Give a user a role: Student, Operator or Admin. An unknown username is refused unless --create is given."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=list(PERMISSIONS))
        parser.add_argument(
            "--create", action="store_true", help="Create the user (without a password) if no such user exists."
        )

    def handle(self, *args, **options):
        users = get_user_model().objects
        username = options["username"]
        created = False
        user = users.filter(username=username).first()
        if user is None:
            if not options["create"]:  # a typo must not make an account
                raise CommandError(f"No user '{username}'. Check the name, or add --create to make a new account.")
            user = users.create(username=username)
            user.set_unusable_password()
            user.save()
            created = True
        try:
            assign_role(user, options["role"])
        except RoleError as exc:
            raise CommandError(str(exc)) from exc
        note = " (new user: set a password with `manage.py changepassword`)" if created else ""
        self.stdout.write(f"{user.username} is now {options['role']}{note}.")
