"""LLM response cache: a replayed run (or a workflow with `cache: true`) reuses identical calls at no cost."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from providers.llm import LLMResult, ToolCall

from .models import LLMCacheEntry


def key(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, max_tokens: int) -> str:
    payload = {"model": model, "messages": messages, "tools": tools or [], "max_tokens": max_tokens}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def lookup(cache_key: str) -> LLMResult | None:
    entry = LLMCacheEntry.objects.filter(key=cache_key).first()
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


def store(cache_key: str, model: str, result: LLMResult) -> None:
    response = {
        "content": result.content,
        "tool_calls": [c.__dict__ for c in result.tool_calls],
        "message": result.message,
        "unpriced": result.cost_usd is None,
    }
    LLMCacheEntry.objects.update_or_create(key=cache_key, defaults={"model": model, "response": response})
