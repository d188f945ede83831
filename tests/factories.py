from __future__ import annotations

import copy
from typing import Any

import factory
from django.contrib.auth import get_user_model

from catalog.models import Workflow, WorkflowVersion
from catalog.specs import spec_hash
from runs.models import Mode, Run

MINIMAL_SPEC: dict[str, Any] = {
    "id": "tiny",
    "version": "1.0.0",
    "title": "Tiny workflow",
    "summary": "A one-step workflow for tests.",
    "personas": ["student"],
    "tags": ["test"],
    "skills": [],
    "inputs": {
        "type": "object",
        "required": ["topic"],
        "properties": {
            "topic": {"type": "string", "title": "Topic", "default": "agents", "maxLength": 50},
            "count": {"type": "integer", "title": "Count", "default": 3, "minimum": 1, "maximum": 5},
        },
    },
    "steps": [{"id": "answer", "title": "Answer", "prompt": "Explain {{ inputs.topic | untrusted }}"}],
    "artifacts": [{"name": "notes.md", "template": "# {{ inputs.topic }}\n\n{{ steps.answer }}"}],
    "caps": {
        "test": {"max_output_tokens": 200, "timeout_seconds": 30, "max_tool_calls": 2, "budget_usd": 0.01},
        "full": {"max_output_tokens": 400, "timeout_seconds": 60, "max_tool_calls": 4, "budget_usd": 0.1},
    },
}


def minimal_spec(**overrides: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec.update(overrides)
    return spec


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")


class WorkflowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workflow

    slug = factory.Sequence(lambda n: f"workflow-{n}")
    title = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    summary = "A workflow for tests."
    personas = factory.LazyFunction(lambda: ["student"])
    tags = factory.LazyFunction(lambda: ["test"])


class WorkflowVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkflowVersion

    workflow = factory.SubFactory(WorkflowFactory)
    number = factory.Sequence(lambda n: n + 1)
    version = "1.0.0"
    spec = factory.LazyAttribute(lambda o: minimal_spec(id=o.workflow.slug))
    spec_hash = factory.LazyAttribute(lambda o: spec_hash(o.spec))

    @factory.post_generation
    def make_latest(obj, create, extracted, **kwargs):
        if create:
            obj.workflow.latest_version = obj
            obj.workflow.save(update_fields=["latest_version"])


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    user = factory.SubFactory(UserFactory)
    workflow_version = factory.SubFactory(WorkflowVersionFactory)
    mode = Mode.TEST
    inputs = factory.LazyFunction(lambda: {"topic": "agents", "count": 3})
    inputs_hash = factory.LazyAttribute(lambda o: __import__("catalog.inputs", fromlist=["x"]).inputs_hash(o.inputs))
