from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    READ = "read", "Read: workflows, runs and artifacts"
    RUN = "run", "Run: read, and start, cancel, resume and rerun runs"


class AccessToken(models.Model):
    """A personal access token for the HTTP API. Only a SHA-256 of the secret is kept: the secret is shown
    once, when it is made. Tokens are long and random, so a fast hash is enough (nothing to brute-force)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=80)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, help_text="The first characters of the token, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    # Not a column: the owner's request count this minute, set by tokens.authenticate for the rate-limit headers.
    window_count = 0
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the token never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="token_user_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def allows(self, scope: str) -> bool:
        return scope == Scope.READ or self.scope == Scope.RUN


class RequestWindow(models.Model):
    """API requests one user made in the current one-minute window, over all their tokens, in the database
    so every web process sees them (a user with many tokens gets no more than one token's allowance)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id} {self.window_start:%H:%M}: {self.count} requests"


class IdempotentRequest(models.Model):
    """An `Idempotency-Key` a user sent with POST /runs, and the run it started: a retry of the same request
    answers that run instead of starting another. Claimed (run empty) before the run is started, so two
    requests racing with one key start one run."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    body_hash = models.CharField(max_length=64)
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="unique_idempotency_key")]

    def __str__(self) -> str:
        return self.key
