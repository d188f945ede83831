"""Writing audit events: one function, called by the services that change or use connections."""

from __future__ import annotations

from typing import Any

from django.db import models

from .models import AuditAction, AuditEvent


def record(
    action: AuditAction,
    target: models.Model,
    *,
    actor: Any = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEvent:
    user = actor if getattr(actor, "pk", None) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "system",
        action=action,
        target_type=target._meta.label,
        target_id=str(target.pk),
        target_label=str(target)[:200],
        ip_address=ip,
        detail=detail,
    )


def client_ip(request: Any) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trivially forged unless a known proxy sets it.
    return request.META.get("REMOTE_ADDR") or None
