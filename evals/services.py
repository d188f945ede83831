"""Writes to eval sets: saving a set of input sets, and running it as a batch of test runs. The runs go
through runs.services.start_run like any other, so the engine, budgets, the per-user limit and fair share
all apply; a batch that does not fit is refused whole (nothing half-started)."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from catalog import inputs as run_inputs
from catalog.models import Workflow
from providers.resolution import split_model
from runs.models import Mode
from runs.services import RunRefused, start_run

from .models import EvalBatch, EvalCase, EvalRun, EvalSet

MAX_CASES = 50
MAX_MODELS = 6


class EvalError(Exception):
    """A set or a batch that cannot be saved or started; the message says why in plain words."""


def parse_cases(text: str) -> list[dict[str, Any]]:
    """One JSON object of inputs per line (blank lines skipped); EvalError naming the line otherwise."""
    cases = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"Line {number} is not JSON ({exc.msg}).") from None
        if not isinstance(value, dict):
            raise EvalError(f'Line {number} must be a JSON object of inputs, like {{"topic": "Memory"}}.')
        cases.append(value)
    if not cases:
        raise EvalError("Give at least one input set: one JSON object per line.")
    if len(cases) > MAX_CASES:
        raise EvalError(f"An eval set holds at most {MAX_CASES} input sets.")
    return cases


def _label(inputs: dict[str, Any], schema: dict[str, Any], position: int) -> str:
    """The first text input in the schema's order (PostgreSQL's jsonb does not keep the inputs' own order)."""
    first = next((str(inputs[n]) for n in schema["properties"] if isinstance(inputs.get(n), str) and inputs[n]), "")
    return f"{position}. {first[:100]}" if first else f"Input set {position}"


def save_set(*, workflow: Workflow, user: Any, name: str, cases: list[dict[str, Any]]) -> EvalSet:
    """Create the named set (or replace the cases of the workflow's set of that name). Every case is checked
    against the current version's inputs first: a bad one saves nothing."""
    version = workflow.current_version
    assert version is not None
    clean = []
    for position, values in enumerate(cases, 1):
        try:
            clean.append(run_inputs.validate(version.input_schema, values))
        except run_inputs.InputError as exc:
            raise EvalError(f"Input set {position}: {exc}") from None
    with transaction.atomic():
        eval_set, _ = EvalSet.objects.get_or_create(workflow=workflow, name=name.strip(), defaults={"owner": user})
        eval_set.cases.all().delete()
        EvalCase.objects.bulk_create(
            EvalCase(eval_set=eval_set, position=i, label=_label(values, version.input_schema, i), inputs=values)
            for i, values in enumerate(clean, 1)
        )
        eval_set.save(update_fields=["updated_at"])
    return eval_set


def run_batch(*, eval_set: EvalSet, user: Any, models: list[str]) -> EvalBatch:
    """Start every case on every model as a test run of the workflow's current version."""
    models = list(dict.fromkeys(models))
    if not models:
        raise EvalError("Choose at least one model.")
    if len(models) > MAX_MODELS:
        raise EvalError(f"Compare at most {MAX_MODELS} models at once.")
    for name in models:
        split_model(name)
    version = eval_set.workflow.current_version
    assert version is not None
    cases = list(eval_set.cases.all())
    if not cases:
        raise EvalError("This eval set has no input sets.")
    try:
        with transaction.atomic():  # the runs are queued when this commits, all or none
            batch = EvalBatch.objects.create(eval_set=eval_set, workflow_version=version, user=user, model_names=models)
            for case in cases:
                for model in models:
                    run = start_run(
                        workflow_version=version, user=user, inputs=case.inputs, mode=Mode.TEST, models=[model]
                    )
                    EvalRun.objects.create(batch=batch, case=case, model=model, run=run)
    except (RunRefused, run_inputs.InputError) as exc:
        raise EvalError(f"The batch was not started: {exc}") from None
    return batch
