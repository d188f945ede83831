"""The offline demo model: deterministic answers built from the prompt and the skill text, no network.

It is not AI. It exists so the whole pipeline (prompts, tool loop, artifacts, costs) runs on a machine with
no provider key; providers/llm.py registers it with LiteLLM as the custom provider ``offline``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

MODEL = "offline/demo"
BANNER = (
    "> **Offline demo model — not AI.** This text was assembled deterministically from the prompt and the "
    "skill's own text so the workflow can run without a provider key."
)
_UNTRUSTED = re.compile(r"</?untrusted>")
_MARKUP = re.compile(r"^(?:[-*>#|]|\d+\.)")
_HEADING = re.compile(r"^#{1,4}\s+(.+?)\s*#*$", re.MULTILINE)
# A prompt that names its sections ("Use these Markdown headings, in this order: Outline; Notes.") gets them.
_ASKED_HEADINGS = re.compile(r"Use these Markdown headings, in this order:\s*(.+?)\.?\s*$", re.MULTILINE)
_FILE_PATH = re.compile(r"(?<![\w/])(?:references|examples|scripts|templates|docs)/[\w.-]+(?:/[\w.-]+)*\.\w+")
# A prompt line that states an input ("Topic: Planning agents"), which the sectioned answer repeats.
_GIVEN = re.compile(r"^[A-Z][\w ]{0,30}: \S")
JUDGE_MARKER = "You grade an answer against a rubric"  # runs/judge.py sends it; this model then judges


@dataclass
class OfflineReply:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def _tool_names(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in tools or [] if t.get("type") == "function"}


def _first_enum(function: dict[str, Any], param: str) -> Any:
    prop = function.get("parameters", {}).get("properties", {}).get(param, {})
    values = prop.get("enum") or []
    return values[0] if values else None


def _json(message: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(_text(message))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _scripts(listing_message: dict[str, Any]) -> list[str]:
    refs = _json(listing_message).get("references", [])
    return sorted(
        str(r.get("path")) for r in refs if isinstance(r, dict) and str(r.get("path")).endswith((".py", ".sh"))
    )


def _apply_skill_call(results: list[dict[str, Any]], tools: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """With code tools offered: list the skill's files, list the run's files, run the skill's first script
    (sorted by path) with the input files as arguments, then answer."""
    listing = _json(results[0])
    scripts = _scripts(results[0])
    if len(results) == 1 and "list_files" in tools:
        return {"name": "list_files", "arguments": {}}
    ran = any("exit_code" in _json(m) for m in results)
    if ran:
        return None
    files = _json(results[1]).get("inputs", []) if len(results) > 1 else []
    args = [f["path"] for f in files if isinstance(f, dict) and "path" in f]
    return {"name": "run_script", "arguments": {"skill": listing.get("skill"), "path": scripts[0], "args": args}}


def _next_tool_call(messages: list[dict[str, Any]], tools: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """List the references first, then read the first one listed (or, offered code, run the first script),
    then answer."""
    results = [m for m in messages if m.get("role") == "tool"]
    if "run_script" in tools and results and _scripts(results[0]):
        return _apply_skill_call(results, tools)
    if not results and "list_references" in tools:
        skill = _first_enum(tools["list_references"], "skill")
        return {"name": "list_references", "arguments": {"skill": skill} if skill else {}}
    if len(results) == 1 and "read_reference" in tools:
        try:
            listing = json.loads(_text(results[0]))
        except ValueError:
            return None
        refs = listing.get("references") or []
        if refs:
            return {"name": "read_reference", "arguments": {"skill": listing.get("skill"), "path": refs[0]["path"]}}
    return None


def _read_paths(messages: list[dict[str, Any]]) -> list[str]:
    """The skill files this conversation read with read_reference (SKILL.md included), by path: the answer
    cites what it read, as the steps' prompts ask, so a skill whose SKILL.md links no reference is cited too."""
    paths: list[str] = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or function.get("name") != "read_reference":
                continue
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                continue
            path = str(arguments.get("path") or "").split("#", 1)[0] if isinstance(arguments, dict) else ""
            if path:
                paths.append(path)
    return list(dict.fromkeys(paths))


def _key_ideas(text: str, limit: int = 8) -> list[str]:
    ideas: list[str] = []
    for match in _HEADING.finditer(text):
        heading = match.group(1).strip()
        after = text[match.end() :].strip().split("\n\n", 1)[0]
        after = re.sub(r"^\s*(?:[-*>]|\d+\.)\s+", "", after, flags=re.MULTILINE)
        sentence = re.split(r"(?<=[.!?])\s", " ".join(after.split()), maxsplit=1)[0]
        if sentence.startswith("#") or not sentence:
            ideas.append(f"**{heading}**")
        else:
            ideas.append(f"**{heading}** — {sentence[:220]}")
        if len(ideas) >= limit:
            break
    return ideas


def _answer(messages: list[dict[str, Any]], max_tokens: int | None) -> str:
    user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    # Reference text the tools returned comes first, then the skill text in the system prompt.
    context = "\n".join(_text(m) for m in messages if m.get("role") == "tool")
    context += "\n" + "\n".join(_text(m) for m in messages if m.get("role") == "system")
    plain = [_UNTRUSTED.sub("", " ".join(line.split())) for line in user.splitlines()]
    asks = [line[:200] for line in plain if line and not _MARKUP.match(line)][:10]
    title = asks[0].lstrip("#").strip() if asks else "Answer"
    asked = _ASKED_HEADINGS.search(user)
    if asked:
        names = [name.strip() for name in asked.group(1).split(";") if name.strip()]
        sources = list(dict.fromkeys(_FILE_PATH.findall(context + "\n" + user) + _read_paths(messages)))
        given = [line for line in asks if _GIVEN.match(line)][:4]
        return _sectioned(names, _key_ideas(context, limit=12) or asks or [title], sources, max_tokens, given)
    lines = [BANNER, "", f"## {title}", "", "### What was asked"]
    lines += [f"- {line}" for line in asks[1:]] or ["- (no further details)"]
    runs = [r for m in messages if m.get("role") == "tool" and "exit_code" in (r := _json(m))]
    for result in runs:
        lines += ["", "### What the skill's script did", f"- exit code {result['exit_code']}"]
        lines += [f"- wrote `{o['path']}` ({o['bytes']} bytes)" for o in result.get("outputs", [])]
        lines += [f"- {note}" for note in result.get("notes", [])]
        if not result.get("outputs"):
            lines.append("- wrote no file")
    ideas = _key_ideas(context)
    if ideas:
        lines += ["", "### Key ideas from the skill"]
        lines += [f"{i}. {idea}" for i, idea in enumerate(ideas, 1)]
    read = _read_paths(messages)
    if read:
        lines += ["", "### Sources"]
        lines += [f"- `{path}`" for path in read]
    lines += [
        "",
        "### Next steps",
        "- Read the skill's references listed above, one section at a time.",
        "- Connect a real provider in Settings for answers written by a language model.",
    ]
    text = "\n".join(lines)
    if max_tokens:
        text = text[: max_tokens * 4]
    return text


def _sectioned(
    names: list[str], ideas: list[str], sources: list[str], max_tokens: int | None, given: list[str] | None = None
) -> str:
    """The sections the prompt asked for, points from the skill under each, sized to fit the token cap whole
    (a cut answer would lose its last sections). The answer names what it was given ("Topic: …"), so two runs
    on different inputs answer differently."""
    head = [BANNER, ""]
    if given:
        head += ["*For " + "; ".join(line.rstrip(".") for line in given) + ".*", ""]
    if sources:
        head += ["Drawn from " + ", ".join(f"`{path}`" for path in sources[:6]) + ".", ""]
    room = (max_tokens or 4000) * 4 - len("\n".join(head)) - sum(len(n) + 8 for n in names) - 40
    per = max(2, -(-6 // max(1, len(names))))  # at least six points in all
    width = max(40, room // max(1, per * len(names)) - 4)
    lines = list(head)
    for i, name in enumerate(names):
        lines += [f"## {name}", ""]
        for n in range(per):
            lines.append(f"- {ideas[(per * i + n) % len(ideas)][:width]}")
        lines.append("")
    return "\n".join(lines).strip()


def _judge(messages: list[dict[str, Any]]) -> str:
    """A deterministic verdict (not AI): each criterion scores by the answer's length and structure, and a
    little by how many of the criterion's own longer words the answer uses."""
    user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    match = re.search(r"```json\s*\n(.*?)```", user, re.DOTALL)
    criteria = json.loads(match.group(1)) if match else []
    answer = user.split("<untrusted>", 1)[-1].rsplit("</untrusted>", 1)[0]
    words = re.findall(r"[^\W_]+", answer.lower())
    shape = 0.4 * min(1.0, len(words) / 150) + 0.4 * min(1.0, len(_HEADING.findall(answer)) / 3)
    scores = {}
    for criterion in criteria:
        keys = {w for w in re.findall(r"[a-z]{5,}", str(criterion.get("description", "")).lower())}
        hits = len(keys & set(words)) / len(keys) if keys else 1.0
        scores[str(criterion.get("name"))] = round(shape + 0.2 * hits, 2)
    return json.dumps({"scores": scores, "reason": "Offline demo judge: scored on length, sections and wording."})


def respond(
    messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, max_tokens: int | None = None
) -> OfflineReply:
    prompt_tokens = sum(estimate_tokens(_text(m)) for m in messages) + estimate_tokens(json.dumps(tools or []))
    call = _next_tool_call(messages, _tool_names(tools)) if tools else None
    if call:
        n = sum(1 for m in messages if m.get("role") == "tool") + 1
        arguments = json.dumps(call["arguments"], sort_keys=True)
        tool_call = {
            "id": f"call_offline_{n}",
            "type": "function",
            "function": {"name": call["name"], "arguments": arguments},
        }
        return OfflineReply(
            tool_calls=[tool_call], prompt_tokens=prompt_tokens, completion_tokens=estimate_tokens(arguments)
        )
    system = next((_text(m) for m in messages if m.get("role") == "system"), "")
    content = _judge(messages) if system.startswith(JUDGE_MARKER) else _answer(messages, max_tokens)
    return OfflineReply(content=content, prompt_tokens=prompt_tokens, completion_tokens=estimate_tokens(content))
