"""What the API sends and receives. Typed, so django-ninja writes the OpenAPI description from them."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from runs.money import usd_text

# Money leaves the platform as a decimal string, exact and without exponent ("0", "0.00012"): in the API, in
# events and in `runworkflow --json` alike (docs/api.md).
Money = Annotated[
    Decimal,
    PlainSerializer(usd_text, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["0.00012"]}),
]

# A budget in: a positive JSON number or decimal string (the string form keeps every digit).
BudgetIn = Annotated[
    Decimal,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^(0*[1-9]\d*(\.\d+)?|0*\.\d*[1-9]\d*|0+\.\d*[1-9]\d*)$"},
            ]
        }
    ),
]


def _iso_day(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("Use a day as YYYY-MM-DD.")  # not a number of seconds, as pydantic would accept
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]

# The error statuses every endpoint may answer (django-ninja's codes_4xx leaves out 422).
ERRORS = frozenset({400, 401, 403, 404, 409, 413, 422, 429})


class SpecProblemOut(Schema):
    line: int | None = Field(description="1-based line of the YAML, when the problem is at one place.")
    field: str
    message: str


class ErrorOut(Schema):
    code: str = Field(description="Stable, machine-readable: not_found, full_run_locked, queue_full, …")
    message: str = Field(description="What went wrong, in plain words.")
    errors: dict[str, str] | None = Field(None, description="Per input field, for invalid_inputs.")
    problems: list[SpecProblemOut] | None = Field(
        None, description="Each spec problem with its line, for invalid_spec."
    )


class WorkflowOut(Schema):
    slug: str
    title: str
    summary: str
    personas: list[str]
    tags: list[str]
    skills: list[str]
    version: int
    url: str


class EstimateOut(Schema):
    model: str
    test: Money | None = Field(description="Upper estimate in USD of a test run; null when unpriced.")
    full: Money | None


class WorkflowDetailOut(WorkflowOut):
    input_schema: dict[str, Any] = Field(description="JSON Schema of the run inputs.")
    caps: dict[str, dict[str, Any]] = Field(description="Limits per mode: tokens, time, tool calls, budget.")
    estimates: list[EstimateOut]


class RunIn(Schema):
    workflow: str = Field(description="The workflow's slug.")
    mode: Literal["validate", "test", "full"] = "test"
    inputs: dict[str, Any] = Field(default_factory=dict)
    model: str | None = Field(None, description="provider/model; the default connection's model when absent.")
    budget_usd: BudgetIn | None = Field(None, gt=0, description="Lower the run's budget below the workflow's cap.")


class ArtifactOut(Schema):
    name: str
    size: int
    content_type: str
    url: str


class ProgressOut(Schema):
    steps_done: int
    steps_total: int
    percent: int
    current_step: str


class TokensOut(Schema):
    prompt: int
    completion: int
    total: int


class StepOut(Schema):
    id: str
    title: str
    done: bool


class CheckOut(Schema):
    name: str
    kind: Literal["sections", "length", "patterns", "json_schema", "references", "rubric"]
    passed: bool
    score: float = Field(description="From 0 to 1.")
    reason: str
    step: str = Field(description="The step whose output was checked.")


class RunOut(Schema):
    id: UUID
    url: str
    events_url: str
    web_url: str
    workflow: str
    workflow_version: int
    mode: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "stopped"]
    finished: bool
    reason: str
    inputs: dict[str, Any]
    requested_models: list[str]
    model_used: str
    budget_usd: Money | None
    estimated_cost_usd: Money | None
    cost_usd: Money
    cost_unpriced: bool
    tokens: TokensOut
    progress: ProgressOut
    steps: list[StepOut]
    checks: list[CheckOut] = Field(description="The quality checks' results (empty before they ran).")
    checks_passed: bool | None = Field(description="Null when the workflow has no checks or they did not run.")
    judge_score: Decimal | None = Field(description="The rubric's weighted score from its judge, 0 to 1.")
    unlocked_by: UUID | None = Field(description="For a full run: the passed test run that unlocked it.")
    replay: bool
    resumed_from: UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    artifacts: list[ArtifactOut]


NEXT = "The next page's URL (same filters and limit); null on the last page."


class RunPageOut(Schema):
    items: list[RunOut]
    next: str | None = Field(description=NEXT)


class WorkflowPageOut(Schema):
    items: list[WorkflowOut]
    next: str | None = Field(description=NEXT)


class ArtifactPageOut(Schema):
    items: list[ArtifactOut]
    next: str | None = Field(description=NEXT)
