"""Eval sets: named input sets for a workflow, run as a batch of test runs on one or more models, so an
operator can compare models (pass rate, judge score, cost, latency) and catch a regression before publishing."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EvalSet(models.Model):
    workflow = models.ForeignKey("catalog.Workflow", on_delete=models.CASCADE, related_name="eval_sets")
    name = models.CharField(max_length=120)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="eval_sets")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow__title", "name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="unique_eval_set_name")]

    def __str__(self) -> str:
        return f"{self.workflow.slug}: {self.name}"


class EvalCase(models.Model):
    """One input set of an eval set, valid against the workflow's input schema when it was saved."""

    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=120)
    inputs = models.JSONField(default=dict)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["eval_set", "position"], name="unique_eval_case_position")]

    def __str__(self) -> str:
        return self.label


class EvalBatch(models.Model):
    """One run of an eval set: every case on every chosen model, in test mode, on one workflow version."""

    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="batches")
    workflow_version = models.ForeignKey("catalog.WorkflowVersion", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model_names = models.JSONField(default=list, help_text="The models compared, as provider/model.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.eval_set} on {', '.join(self.model_names)}"


class EvalRun(models.Model):
    """Which run answered which case on which model (the run itself is an ordinary test run)."""

    batch = models.ForeignKey(EvalBatch, on_delete=models.CASCADE, related_name="entries")
    case = models.ForeignKey(EvalCase, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=160)
    run = models.OneToOneField("runs.Run", on_delete=models.CASCADE, related_name="eval_entry")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "case", "model"], name="unique_eval_cell")]

    def __str__(self) -> str:
        return f"{self.case} on {self.model}"
