"""LLM response cache. A workflow's `cache: true` decides what is stored; only a Replay reads it back, at no
cost, preferring the answers of the run it replays (a plain run, a Rerun and a Resume always call the model)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db.models import Case, IntegerField, Value, When

from providers.llm import LLMResult, ToolCall

from .models import LLMCacheEntry


def key(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, max_tokens: int) -> str:
    payload = {"model": model, "messages": messages, "tools": tools or [], "max_tokens": max_tokens}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def lookup(cache_key: str, *, prefer_run: Any = None) -> LLMResult | None:
    """The answer `prefer_run` got to this request if it stored one, else the newest stored answer."""
    first = Case(When(run_id=prefer_run, then=Value(0)), default=Value(1), output_field=IntegerField())
    entry = LLMCacheEntry.objects.filter(key=cache_key).order_by(first, "-created_at", "-pk").first()
    if entry is None:
        return None
    data = entry.response
    return LLMResult(
        content=data["content"],
        tool_calls=[ToolCall(**c) for c in data["tool_calls"]],
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=None if data.get("unpriced") else 0,  # type: ignore[arg-type]
        latency_ms=0,
        message=data["message"],
    )


def store(cache_key: str, model: str, result: LLMResult, *, run: Any = None) -> None:
    response = {
        "content": result.content,
        "tool_calls": [c.__dict__ for c in result.tool_calls],
        "message": result.message,
        "unpriced": result.cost_usd is None,
    }
    LLMCacheEntry.objects.update_or_create(key=cache_key, run_id=run, defaults={"model": model, "response": response})
