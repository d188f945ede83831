from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    TESTED = "tested", "Tested"
    USED = "used", "Used by a run"
    ROTATED = "rotated", "Key re-encrypted"
    PROGRESSION_SKIPPED = "progression_skipped", "Skipped the test-run rule"
    DRAFTED = "drafted", "Saved a draft"
    PUBLISHED = "published", "Published"
    ROLLED_BACK = "rolled_back", "Rolled back"


class AuditEvent(models.Model):
    """Who did what to which connection (or run), when and from where. Never a secret."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=200)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.action} {self.target_label}"
