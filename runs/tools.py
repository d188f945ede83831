"""Read-only tools over a workflow's own skills: list, search and read their resources (size-limited).

A skill's resources are every text file of its folder (read at import, stored in SkillVersion rows) and the
parts of a long SKILL.md body (`SKILL.md#part-2`, …); binary files are listed but not readable. They are the
only tools a model can call, they read nothing but the skills the workflow names, and they never touch the
file system, so a path like `../../etc/passwd` can only miss.
"""

from __future__ import annotations

import json
import re
from typing import Any

from catalog.models import SkillVersion
from catalog.skills import PART_CHARS, PART_PREFIX, normalize_path

MAX_READ_CHARS = PART_CHARS  # one read returns one part of a long SKILL.md whole
MAX_SEARCH_HITS = 8
SKILL_MD = "SKILL.md"


class ToolError(Exception):
    pass


def definitions(names: list[str], skills: dict[str, SkillVersion]) -> list[dict[str, Any]]:
    skill_param = {"type": "string", "enum": sorted(skills), "description": "The skill whose references to use."}
    specs = {
        "list_references": (
            "List the files of a skill (references, examples, scripts as text, further parts of a long "
            "SKILL.md), with their sections; binary files are listed but cannot be read.",
            {"skill": skill_param},
            ["skill"],
        ),
        "read_reference": (
            "Read one file of a skill (a path as listed, or as SKILL.md links it), or one section of it.",
            {
                "skill": skill_param,
                "path": {"type": "string", "description": "The path, as listed or as linked from SKILL.md."},
                "section": {"type": "string", "description": "Optional heading to read only that section."},
                "offset": {"type": "integer", "description": "Optional character to start from, for long files."},
            },
            ["skill", "path"],
        ),
        "search_references": (
            "Search all text files of a skill for a word or phrase; returns matching lines.",
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
    refs = {**skill.resources, SKILL_MD: skill.body}  # SKILL.md itself is readable whole, by its path
    if name == "list_references":
        listing: list[dict[str, Any]] = [
            {"path": path, "sections": _headings(text), "chars": len(text)}
            for path, text in sorted(refs.items(), key=_listing_order)
        ]
        listing += [{"path": a["path"], "bytes": a["size"], "type": a["type"], "readable": False} for a in skill.assets]
        return json.dumps({"skill": skill_name, "references": listing}), {"skill": skill_name, "listed": len(listing)}
    if name == "read_reference":
        return _read(skill_name, skill, refs, args)
    if name == "search_references":
        query = str(args.get("query", "")).strip().lower()[:200]
        if not query:
            raise ToolError("Give a query to search for.")
        hits = [
            {"path": path, "line": n, "text": line.strip()[:300]}
            for path, text in sorted(refs.items())
            if path != SKILL_MD  # its text is searched as the prompt's part and SKILL.md#part-N
            for n, line in enumerate(text.splitlines(), 1)
            if query in line.lower()
        ][:MAX_SEARCH_HITS]
        return json.dumps({"skill": skill_name, "query": query, "hits": hits}), {
            "skill": skill_name,
            "query": query,
            "hits": len(hits),
        }
    raise ToolError(f"Unknown tool '{name}'.")


def _listing_order(item: tuple[str, str]) -> tuple[int, int, str]:
    """Files by path, then the parts of a long SKILL.md in their order (part-2 before part-10)."""
    path = item[0]
    if path == SKILL_MD:
        return 1, 0, ""
    if path.startswith(PART_PREFIX):
        return 1, int(path.removeprefix(PART_PREFIX)), ""
    return 0, 0, path


def _read(skill_name: str, skill: SkillVersion, refs: dict[str, str], args: dict[str, Any]) -> tuple[str, dict]:
    asked = str(args.get("path", ""))[:300]
    path = normalize_path(asked)
    if path is None:
        raise ToolError(f"'{asked}' is not a path inside {skill_name}. Call list_references first.")
    if path not in refs:
        asset = next((a for a in skill.assets if a["path"] == path), None)
        if asset:
            raise ToolError(f"'{path}' is a {asset['type']} file of {asset['size']} bytes: listed, not readable.")
        raise ToolError(f"No file '{path}' in {skill_name}. Call list_references first.")
    text = refs[path]
    section = args.get("section")
    if section:
        text = _section(text, str(section)) or f"(no section '{section}'; sections: {', '.join(_headings(text))})"
    try:
        offset = max(0, int(args.get("offset") or 0))
    except (TypeError, ValueError):
        raise ToolError("offset must be a whole number of characters.") from None
    body = text[offset : offset + MAX_READ_CHARS]
    end = offset + len(body)
    if end < len(text):  # say where the rest is: nothing is cut without a way to read it
        body += f"\n…(continues: {len(text) - end} more characters; read again with offset={end})"
    summary = {"skill": skill_name, "path": path, "section": section, "chars": len(body)}
    if offset:
        summary["offset"] = offset
    return body, summary


def disclosure(skills: dict[str, SkillVersion]) -> dict[str, dict[str, Any]]:
    """For trace.json: how much of each SKILL.md body the prompt got, and where the rest can be read."""
    from .prompts import skill_sections

    sections = skill_sections(skills)
    return {
        name: {
            "body_chars": len(sv.body),
            "prompt_chars": sections[name][1],
            **({"cut_to_share_the_prompt": True} if sections[name][1] < len(sv.parts[0]) else {}),
            "readable_parts": [f"SKILL.md#part-{n}" for n in range(2, len(sv.parts) + 1)],
        }
        for name, sv in skills.items()
    }
