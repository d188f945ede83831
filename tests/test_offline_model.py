from __future__ import annotations

import json
import subprocess
import sys

from providers import llm, offline
from providers.resolution import Target

OFFLINE = Target(model="offline/demo", provider="offline", litellm_model="offline/demo")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "list_references",
            "parameters": {"type": "object", "properties": {"skill": {"type": "string", "enum": ["s1"]}}},
        },
    },
    {"type": "function", "function": {"name": "read_reference", "parameters": {"type": "object", "properties": {}}}},
]


def test_importing_the_platform_does_not_import_litellm():
    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.test_settings');"
        "import django; django.setup();"
        "import providers.llm, runs.pipeline, runs.views, catalog.views;"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_offline_model_answers_through_litellm_deterministically():
    messages = [
        {"role": "system", "content": "## Loops\nAgents loop. They stop."},
        {"role": "user", "content": "Teach me\nTopic: loops"},
    ]
    first = llm.complete(OFFLINE, messages, max_tokens=300, timeout=5)
    second = llm.complete(OFFLINE, messages, max_tokens=300, timeout=5)
    assert first.content == second.content
    assert "not AI" in first.content
    assert "**Loops** — Agents loop." in first.content
    assert "Topic: loops" in first.content
    assert first.prompt_tokens > 0 and first.completion_tokens > 0
    assert first.cost_usd is None


def test_the_offline_model_calls_tools_when_offered_then_answers():
    messages = [{"role": "user", "content": "Outline"}]
    first = llm.complete(OFFLINE, messages, tools=TOOLS, max_tokens=300, timeout=5)
    assert [c.name for c in first.tool_calls] == ["list_references"]
    assert json.loads(first.tool_calls[0].arguments) == {"skill": "s1"}
    listing = json.dumps({"skill": "s1", "references": [{"path": "references/a.md"}]})
    messages += [first.message, {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": listing}]
    second = llm.complete(OFFLINE, messages, tools=TOOLS, max_tokens=300, timeout=5)
    assert [(c.name, json.loads(c.arguments)) for c in second.tool_calls] == [
        ("read_reference", {"skill": "s1", "path": "references/a.md"})
    ]
    messages += [
        second.message,
        {"role": "tool", "tool_call_id": second.tool_calls[0].id, "content": "# A\nAlpha text."},
    ]
    third = llm.complete(OFFLINE, messages, tools=TOOLS, max_tokens=300, timeout=5)
    assert third.tool_calls == []
    assert "**A** — Alpha text." in third.content


def test_the_offline_answer_respects_max_tokens():
    reply = offline.respond([{"role": "user", "content": "x " * 2000}], max_tokens=20)
    assert len(reply.content) <= 80
