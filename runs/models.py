from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Mode(models.TextChoices):
    VALIDATE = "validate", "Validate"
    TEST = "test", "Test run"
    FULL = "full", "Full run"


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    STOPPED = "stopped", "Stopped at a limit"


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.STOPPED)


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    workflow_version = models.ForeignKey("catalog.WorkflowVersion", on_delete=models.PROTECT, related_name="runs")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(blank=True, help_text="Why the run ended as it did, in one sentence.")
    inputs = models.JSONField(default=dict)
    inputs_hash = models.CharField(max_length=64, db_index=True)
    requested_models = models.JSONField(default=list, blank=True)
    model_used = models.CharField(max_length=160, blank=True)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    estimated_cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    cost_unpriced = models.BooleanField(default=False, help_text="Some calls had no known price.")
    # The estimate held against the budgets while the run is in flight; 0 once settled (runs.money).
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    # What the runs this one resumes already spent: it counts against this run's budget too.
    chain_spent_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveSmallIntegerField(default=0)
    steps_done = models.PositiveSmallIntegerField(default=0)
    current_step = models.CharField(max_length=120, blank=True)
    step_outputs = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What the current call has streamed so far (flushed by the worker at most every ~0.5 s), and by whom.
    live_output = models.TextField(blank=True)
    live_tokens = models.PositiveIntegerField(default=0)
    # When the current step began (each step's own timer on the run page), and what the timeline shows as it
    # happens: retries, fallbacks, breaker skips and rate-limit waits ({at, step, text}; runs.pipeline).
    step_started_at = models.DateTimeField(null=True, blank=True)
    timeline_events = models.JSONField(default=list, blank=True)
    # The number of the last RunText row written: event streams compare it to what they have sent.
    text_seq = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=120, blank=True, help_text="The worker host that claimed the run.")
    # The trace, when the disk refused trace.json (the artifact is the normal place).
    trace_text = models.TextField(blank=True)
    replay = models.BooleanField(default=False, help_text="Reuse cached LLM responses where they exist.")
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumes")
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays", help_text="Its answers first."
    )
    connection = models.ForeignKey(
        "providers.ProviderConnection", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The quality checks (runs/checks.py): each one's name, kind, passed, score and reason; None before them.
    check_results = models.JSONField(default=list, blank=True)
    checks_passed = models.BooleanField(null=True, blank=True, help_text="Empty when the spec has no checks.")
    judge_score = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    # The passed test run of the same version, inputs and model that unlocked this full run.
    unlocked_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="unlocked", help_text="For full runs."
    )
    # Set once, by runs.usage.record_finished, when the finished run was added to the usage rollup.
    usage_recorded = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-created_at"]
        # The history pages walk these newest first (keyset pagination on created_at, id): docs/operations.md.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_recent"),
            models.Index(fields=["user", "-created_at", "-id"], name="run_user_recent"),
            models.Index(fields=["status", "-created_at", "-id"], name="run_status_recent"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
            models.Index(fields=["status", "created_at"], name="run_queue"),
            models.Index(fields=["workflow_version", "inputs_hash", "mode", "status"], name="run_progression"),
        ]
        permissions = [("skip_progression", "Can start a full run without a passed test run")]

    def __str__(self) -> str:
        return f"{self.workflow_version.workflow.slug} {self.mode} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_refusal(self) -> bool:
        """Refused before any step ran (a price, a budget): not a limit reached while working."""
        return self.status == Status.STOPPED and self.reason.startswith("Refused") and not self.steps_done

    @property
    def status_label(self) -> str:
        return "Refused" if self.is_refusal else str(self.get_status_display())

    @property
    def duration_seconds(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0, int((self.finished_at - self.started_at).total_seconds()))

    @property
    def key_input(self) -> str:
        """The first input a person would recognise the run by (its topic, say), short, for lists."""
        inputs = self.inputs or {}
        order = [n for n in self.workflow_version.input_order if n in inputs]  # jsonb does not keep key order
        for value in [inputs[n] for n in order] + [v for n, v in inputs.items() if n not in order]:
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            if text.strip():
                return text if len(text) <= 60 else text[:59] + "…"
        return ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def progress_percent(self) -> int:
        return int(100 * self.steps_done / self.steps_total) if self.steps_total else 0


class RunText(models.Model):
    """What the model streamed, in the order it came, one row per flush: event streams send these rows with
    their `seq` as the event id, so a client that reconnects with Last-Event-ID goes on exactly where it left."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="texts")
    seq = models.PositiveIntegerField()
    call = models.PositiveIntegerField(help_text="Which model call of the run (1, 2, …) streamed it.")
    step = models.CharField(max_length=120, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_run_text_seq")]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.seq}"


def artifact_path(instance: Artifact, filename: str) -> str:
    return f"runs/{instance.run_id}/{filename}"


class Artifact(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=80)
    file = models.FileField(upload_to=artifact_path, max_length=300)
    size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="unique_artifact_name")]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def write(cls, run: Run, name: str, text: str | bytes) -> Artifact:
        """Store text (or the bytes of a file the run's code wrote) as the run's artifact `name`, replacing an
        earlier one of that name."""
        from django.core.files.base import ContentFile
        from django.db import transaction

        data = text.encode() if isinstance(text, str) else text
        with transaction.atomic():
            cls.objects.filter(run=run, name=name).delete()
            artifact = cls(run=run, name=name, size=len(data))
            artifact.file.save(name, ContentFile(data), save=False)
            artifact.save()
        return artifact

    @property
    def content_type(self) -> str:
        """From an allowlist by name ending: never a type a browser would execute (HTML, SVG, scripts)."""
        return SAFE_TYPES.get(self.name.rsplit(".", 1)[-1], "application/octet-stream")

    @property
    def previewable(self) -> str:
        """'text' or 'image' when the run page shows it inline, else ''."""
        kind = self.content_type
        if kind.startswith("image/"):
            return "image"
        return "text" if kind.startswith("text/") or kind == "application/json" else ""


SAFE_TYPES = {
    "md": "text/markdown",
    "txt": "text/plain",
    "log": "text/plain",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def run_file_path(instance: RunFile, filename: str) -> str:
    return f"runs/{instance.run_id}/inputs/{filename}"


class RunFile(models.Model):
    """A file given to a run as an input (runs/files.py): stored with the run, counted by retention."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="files")
    input = models.CharField(max_length=80, help_text="The spec input it was given for.")
    name = models.CharField(max_length=120)
    file = models.FileField(upload_to=run_file_path, max_length=300)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["input", "name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="unique_run_file_name")]

    def __str__(self) -> str:
        return self.name


class LLMCacheEntry(models.Model):
    """An LLM response keyed by a hash of (model, messages, tools, parameters), for replays at no cost."""

    key = models.CharField(max_length=64, db_index=True)
    model = models.CharField(max_length=160)
    response = models.JSONField()
    # The run that stored it: purging the run purges its cached responses.
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "LLM cache entry"
        verbose_name_plural = "LLM cache entries"
        # One answer per run and request: a replay reads the very answers of the run it replays.
        constraints = [models.UniqueConstraint(fields=["key", "run"], name="unique_cache_key_per_run")]

    def __str__(self) -> str:
        return f"{self.model} {self.key[:12]}"


class UserBudget(models.Model):
    """An operator-set daily spending limit for one user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget")
    daily_usd = models.DecimalField(max_digits=10, decimal_places=4)
    max_active_runs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Queued + running runs at once; empty means the site's RUNS_ACTIVE_PER_USER."
    )

    def __str__(self) -> str:
        return f"{self.user}: ${self.daily_usd}/day"


class UsageCounts(models.Model):
    """What the usage rollups sum per row."""

    day = models.DateField()
    workflow = models.ForeignKey("catalog.Workflow", on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=160, blank=True, help_text="The model used; empty when no call was made.")
    runs = models.PositiveIntegerField(default=0)
    unpriced_runs = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    # Runs whose quality checks ran, and those that passed them (the pass rate per workflow and model).
    checked_runs = models.PositiveIntegerField(default=0)
    passed_runs = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class UsageDay(UsageCounts):
    """The usage rollup: finished runs summed per day x user x workflow x model (a student's usage page).

    Added to by runs.usage.record_finished when a run finishes; runs.usage.rebuild recomputes it from the runs.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "user", "workflow", "model"], name="unique_usage_day"),
        ]
        indexes = [models.Index(fields=["user", "day"], name="usage_user_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.workflow_id} {self.model}: {self.runs} runs"


class UsageDayTotal(UsageCounts):
    """The same sums over all users, per day x workflow x model (the operators' usage page): a few thousand
    rows a month, however many students and runs."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "workflow", "model"], name="unique_usage_day_total")]

    def __str__(self) -> str:
        return f"{self.day} {self.workflow_id} {self.model}: {self.runs} runs"


class CostEstimate(models.Model):
    """Upper token counts of a workflow version's test and full runs for one model, counted by the worker.

    The workflow page prices these with the current price, so the web process never counts tokens (which
    needs LiteLLM) nor renders a spec's prompts. `basis` names the skill versions the count used.
    """

    workflow_version = models.ForeignKey("catalog.WorkflowVersion", on_delete=models.CASCADE, related_name="+")
    requested = models.CharField(max_length=160, help_text="The connection's model as configured (provider/model).")
    basis = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=160, blank=True, help_text="The model it resolved to; empty: no estimate.")
    test_input_tokens = models.PositiveBigIntegerField(default=0)
    test_output_tokens = models.PositiveBigIntegerField(default=0)
    full_input_tokens = models.PositiveBigIntegerField(default=0)
    full_output_tokens = models.PositiveBigIntegerField(default=0)
    # LiteLLM's bundled price when counted (an operator's ModelPrice, read at display time, wins over it).
    map_input_per_token = models.DecimalField(max_digits=20, decimal_places=14, null=True, blank=True)
    map_output_per_token = models.DecimalField(max_digits=20, decimal_places=14, null=True, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow_version", "requested", "basis"], name="unique_cost_estimate"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_version_id} {self.requested}"
