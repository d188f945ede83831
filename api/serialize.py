"""Rows to the API's shapes (schemas.py), with absolute links a client can follow."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from catalog.models import Workflow
from runs.artifacts import KeptArtifact, artifacts_of
from runs.models import Artifact, Run


def _link(request: HttpRequest, path: str) -> str:
    return request.build_absolute_uri(path)


def workflow(request: HttpRequest, item: Workflow) -> dict[str, Any]:
    version = item.current_version
    assert version is not None
    return {
        "slug": item.slug,
        "title": item.title,
        "summary": item.summary,
        "personas": item.personas,
        "tags": item.tags,
        "skills": list(version.spec.get("skills", [])),
        "version": version.number,
        "url": _link(request, reverse("api-v1:workflow", args=[item.slug])),
    }


def artifact(request: HttpRequest, run: Run, item: Artifact | KeptArtifact) -> dict[str, Any]:
    url = reverse("api-v1:artifact", kwargs={"run_id": run.pk, "name": item.name})
    return {"name": item.name, "size": item.size, "content_type": item.content_type, "url": _link(request, url)}


def run(request: HttpRequest, item: Run) -> dict[str, Any]:
    spec = item.workflow_version.spec
    done = item.step_outputs or {}
    return {
        "id": item.pk,
        "url": _link(request, reverse("api-v1:run", args=[item.pk])),
        "events_url": _link(request, reverse("api-v1:run_events", args=[item.pk])),
        "web_url": _link(request, reverse("runs:detail", args=[item.pk])),
        "workflow": item.workflow_version.workflow.slug,
        "workflow_version": item.workflow_version.number,
        "mode": item.mode,
        "status": item.status,
        "finished": item.is_finished,
        "reason": item.reason,
        "inputs": item.inputs,
        "requested_models": item.requested_models,
        "model_used": item.model_used,
        "budget_usd": item.budget_usd,
        "estimated_cost_usd": item.estimated_cost_usd,
        "cost_usd": item.cost_usd,
        "cost_unpriced": item.cost_unpriced,
        "tokens": {"prompt": item.prompt_tokens, "completion": item.completion_tokens, "total": item.tokens},
        "progress": {
            "steps_done": item.steps_done,
            "steps_total": item.steps_total,
            "percent": item.progress_percent,
            "current_step": item.current_step,
        },
        "steps": [
            {"id": s["id"], "title": s.get("title", s["id"]), "done": s["id"] in done}
            for s in (spec["steps"] if item.mode != "validate" else [])
        ],
        "checks": item.check_results or [],
        "checks_passed": item.checks_passed,
        "judge_score": item.judge_score,
        "unlocked_by": item.unlocked_by_id,
        "replay": item.replay,
        "resumed_from": item.resumed_from_id,
        "created_at": item.created_at,
        "started_at": item.started_at,
        "finished_at": item.finished_at,
        # prefetched by the list view; one query for a single run
        "artifacts": [artifact(request, item, a) for a in artifacts_of(item)],
    }
