from __future__ import annotations

from django.conf import settings
from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini"
    DEEPSEEK = "deepseek", "DeepSeek"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"
    OFFLINE = "offline", "Offline demo model (not AI)"


class ConnectionStatus(models.TextChoices):
    UNTESTED = "untested", "Not tested"
    CONNECTED = "connected", "Connected"
    FAILED = "failed", "Failed"


class ProviderConnection(models.Model):
    """One provider account. The key is stored only encrypted (providers.crypto) and never sent back out."""

    provider = models.CharField(max_length=32, choices=Provider.choices)
    label = models.CharField(max_length=80)
    encrypted_key = models.TextField(blank=True, editable=False)
    key_last4 = models.CharField(max_length=4, blank=True, editable=False)
    api_base = models.URLField(blank=True, help_text="Only for OpenAI-compatible servers or a proxy.")
    allow_private_network = models.BooleanField(
        default=False, help_text="Allow a base URL on a private or loopback address (a local Ollama, vLLM, LM Studio)."
    )
    default_model = models.CharField(max_length=120, blank=True)
    enabled = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(
        default=100,
        help_text="Order on the run form: the connection with the lowest number offers the default model.",
    )
    from_environment = models.BooleanField(default=False, editable=False)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    monthly_budget_usd = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Spending limit per calendar month. Empty: none.",
    )
    allow_unpriced = models.BooleanField(
        default=False,
        help_text="Allow runs on models without a known price: their cost cannot be held to a dollar budget.",
    )
    status = models.CharField(max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.UNTESTED)
    status_message = models.CharField(max_length=300, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    # One connection check at a time (providers.checks): a check in flight holds this until it ends or lapses.
    checking_until = models.DateTimeField(null=True, blank=True, editable=False)
    # What the platform paid for its own calls on this connection (connection checks), never a student's run.
    platform_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "label"]
        constraints = [models.UniqueConstraint(fields=["provider", "label"], name="unique_connection_label")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} — {self.label}"

    def set_key(self, plain: str) -> None:
        from .crypto import encrypt

        self.encrypted_key = encrypt(plain) if plain else ""
        self.key_last4 = plain[-4:] if len(plain) >= 8 else ""

    @property
    def masked_key(self) -> str:
        return f"••••{self.key_last4}" if self.encrypted_key else "—"


class CircuitBreaker(models.Model):
    """The shared state of one connection's breaker (providers.breaker): open until a moment, then one probe
    call at a time (`probe_until` is when an unfinished probe's claim lapses)."""

    connection = models.OneToOneField(
        ProviderConnection, on_delete=models.CASCADE, primary_key=True, related_name="breaker"
    )
    open_until = models.DateTimeField(null=True, blank=True)
    probe_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.connection_id}: open until {self.open_until or '—'}"


class BreakerCount(models.Model):
    """Calls and failures of one connection in one short slice of time, added by every worker process; the
    breaker's sliding window is the sum of the slices it covers."""

    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="+")
    slice_start = models.BigIntegerField(help_text="Unix seconds at which this slice of the window starts.")
    calls = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "slice_start"], name="unique_breaker_slice")]

    def __str__(self) -> str:
        return f"{self.connection_id} @{self.slice_start}: {self.failures}/{self.calls} failed"


class RateWindow(models.Model):
    """Requests and tokens used per connection and minute, shared by every worker process (not memory)."""

    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "minute"], name="unique_rate_window")]

    def __str__(self) -> str:
        return f"{self.connection_id} {self.minute:%H:%M}: {self.requests} requests, {self.tokens} tokens"


class ModelPrice(models.Model):
    """An operator's price for a model LiteLLM's map lacks (or prices differently), per million tokens."""

    model = models.CharField(max_length=160, unique=True, help_text="provider/model, e.g. openai_compatible/llama3.2")
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6)

    def __str__(self) -> str:
        return f"{self.model}: ${self.input_per_million}/${self.output_per_million} per M tokens"
