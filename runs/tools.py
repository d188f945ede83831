"""Read-only tools over a workflow's own skills: list, search and read references (size-limited).

They are the only tools a model can call, they read nothing but the skills the workflow names, and they
never touch the file system: skill text lives in SkillVersion rows.
"""

from __future__ import annotations

import json
import re
from typing import Any

from catalog.models import SkillVersion

MAX_READ_CHARS = 6000
MAX_SEARCH_HITS = 8


class ToolError(Exception):
    pass


def definitions(names: list[str], skills: dict[str, SkillVersion]) -> list[dict[str, Any]]:
    skill_param = {"type": "string", "enum": sorted(skills), "description": "The skill whose references to use."}
    specs = {
        "list_references": (
            "List the reference documents of a skill, with their sections.",
            {"skill": skill_param},
            ["skill"],
        ),
        "read_reference": (
            "Read one reference document of a skill, or one section of it.",
            {
                "skill": skill_param,
                "path": {"type": "string", "description": "The reference path, as listed."},
                "section": {"type": "string", "description": "Optional heading to read only that section."},
            },
            ["skill", "path"],
        ),
        "search_references": (
            "Search a skill's references for a word or phrase; returns matching lines.",
            {"skill": skill_param, "query": {"type": "string", "description": "Words to look for."}},
            ["skill", "query"],
        ),
    }
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": specs[name][0],
                "parameters": {"type": "object", "properties": specs[name][1], "required": specs[name][2]},
            },
        }
        for name in names
    ]


def _headings(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,3}\s+(.+)$", text, re.MULTILINE)][:20]


def _section(text: str, heading: str) -> str | None:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#{1,6})\s+(.+)$", line)
        if m and m.group(2).strip().lower() == heading.strip().lower():
            level = len(m.group(1))
            end = next(
                (j for j in range(i + 1, len(lines)) if re.match(rf"^#{{1,{level}}}\s", lines[j])),
                len(lines),
            )
            return "\n".join(lines[i:end])
    return None


def run(name: str, raw_arguments: str, skills: dict[str, SkillVersion]) -> tuple[str, dict[str, Any]]:
    """Execute a tool call; returns (result text for the model, what to record in the trace)."""
    try:
        args = json.loads(raw_arguments or "{}")
        if not isinstance(args, dict):
            raise ValueError
    except ValueError:
        raise ToolError("The tool arguments were not a JSON object.") from None
    skill_name = str(args.get("skill") or (next(iter(skills)) if len(skills) == 1 else ""))
    skill = skills.get(skill_name)
    if skill is None:
        raise ToolError(f"Unknown skill '{skill_name}'. Available: {', '.join(sorted(skills))}.")
    refs: dict[str, str] = skill.references
    if name == "list_references":
        listing = [
            {"path": path, "sections": _headings(text), "chars": len(text)} for path, text in sorted(refs.items())
        ]
        return json.dumps({"skill": skill_name, "references": listing}), {"skill": skill_name, "listed": len(listing)}
    if name == "read_reference":
        path = str(args.get("path", ""))
        if path not in refs:
            raise ToolError(f"No reference '{path}' in {skill_name}. Call list_references first.")
        text = refs[path]
        section = args.get("section")
        if section:
            text = _section(text, str(section)) or f"(no section '{section}'; sections: {', '.join(_headings(text))})"
        truncated = len(text) > MAX_READ_CHARS
        body = text[:MAX_READ_CHARS] + ("\n…(truncated)" if truncated else "")
        return body, {"skill": skill_name, "path": path, "section": section, "chars": len(body)}
    if name == "search_references":
        query = str(args.get("query", "")).strip().lower()[:200]
        if not query:
            raise ToolError("Give a query to search for.")
        hits = [
            {"path": path, "line": n, "text": line.strip()[:300]}
            for path, text in sorted(refs.items())
            for n, line in enumerate(text.splitlines(), 1)
            if query in line.lower()
        ][:MAX_SEARCH_HITS]
        return json.dumps({"skill": skill_name, "query": query, "hits": hits}), {
            "skill": skill_name,
            "query": query,
            "hits": len(hits),
        }
    raise ToolError(f"Unknown tool '{name}'.")
