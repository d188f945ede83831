"""Roles as Django groups. Students run workflows and see their own runs; operators manage workflows,
skills, providers, budgets and see everyone's runs; admins are superusers."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission


class RoleError(Exception):
    pass


STUDENT, OPERATOR, ADMIN = "Student", "Operator", "Admin"
PERMISSIONS: dict[str, list[str]] = {
    STUDENT: [],  # running workflows and seeing one's own runs needs no permission: object checks decide
    OPERATOR: [
        "runs.view_run",
        "runs.skip_progression",
        "runs.view_userbudget",
        "runs.add_userbudget",
        "runs.change_userbudget",
        "runs.delete_userbudget",
        "providers.view_providerconnection",
        "providers.add_providerconnection",
        "providers.change_providerconnection",
        "providers.delete_providerconnection",
        "providers.view_modelprice",
        "providers.add_modelprice",
        "providers.change_modelprice",
        "catalog.view_workflow",
        "catalog.change_workflow",
        "catalog.view_workflowversion",
        "catalog.view_skill",
        "catalog.change_skill",
        "catalog.view_skillversion",
        "settings_app.view_auditevent",
        "api.view_accesstoken",
        "api.change_accesstoken",  # lets an operator revoke anyone's token in the admin
        "evals.view_evalset",
        "evals.add_evalset",
        "evals.change_evalset",
    ],
    ADMIN: [],  # admins are superusers
}


def setup_roles() -> list[str]:
    for name, codenames in PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = []
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(perms)
    return list(PERMISSIONS)


def assign_role(user: Any, role: str) -> None:
    """Give a user exactly one role; operators and admins can use the admin site."""
    if role not in PERMISSIONS:
        raise RoleError(f"Unknown role '{role}'. Roles: {', '.join(PERMISSIONS)}.")
    setup_roles()
    user.groups.set([Group.objects.get(name=role)])
    user.is_staff = role in (OPERATOR, ADMIN)
    user.is_superuser = role == ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
