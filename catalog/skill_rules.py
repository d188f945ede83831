"""The Agent Skills specification's rules for SKILL.md front matter, as warnings (never refusals).

name: 1-64 characters, Unicode lowercase letters, digits and hyphens (NFKC), no leading, trailing or double hyphen, the
same as its folder; description: 1-1024 characters; license: a name or a bundled licence file;
compatibility: at most 500 characters; metadata: a map of strings to strings; allowed-tools: a
space-delimited string of tool names. Other top-level fields are not in the specification.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

SPEC_FIELDS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
NAME_RULE = re.compile(r"^[^\W_]+(-[^\W_]+)*$")  # letters and digits of any script, single hyphens
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt", "LICENCE.md", "COPYING")
TEMPLATE_FOLDERS = {"template", "templates", "skill-template", "template-skill", "example-skill", "_template"}
_TEMPLATE_TEXT = re.compile(
    r"\breplace (this|with|me)\b|lorem ipsum|\[(your |skill )?description( here)?\]|"
    r"^(a )?(template|example) (for|of) (a )?(new )?skills?\b",
    re.IGNORECASE,
)


def check(meta: dict[str, Any], folder: str) -> list[str]:
    warnings: list[str] = []
    name = meta.get("name")
    if name is None or str(name).strip() == "":
        warnings.append("no name in the front matter; using the folder name")
    else:
        name = str(name).strip()
        if not 1 <= len(name) <= MAX_NAME:
            warnings.append(f"name is {len(name)} characters; the specification allows 1-{MAX_NAME}")
        if not NAME_RULE.match(name) or name != unicodedata.normalize("NFKC", name).lower():
            warnings.append(
                f"name '{name}' breaks the specification: lowercase letters and digits (any script) and single "
                "hyphens only, not at the start or end"
            )
        if name != folder:
            warnings.append(f"name '{name}' does not match its folder '{folder}'")
    description = str(meta.get("description") or "")
    if len(description) > MAX_DESCRIPTION:
        warnings.append(f"description is {len(description)} characters; the specification allows {MAX_DESCRIPTION}")
    if "license" in meta and not isinstance(meta["license"], str):
        warnings.append("license should be a licence name or the name of a bundled licence file")
    compatibility = meta.get("compatibility")
    if compatibility is not None:
        if not isinstance(compatibility, str):
            warnings.append("compatibility should be text")
        elif not 1 <= len(compatibility) <= MAX_COMPATIBILITY:
            warnings.append(
                f"compatibility is {len(compatibility)} characters; the specification allows 1-{MAX_COMPATIBILITY}"
            )
    metadata = meta.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        warnings.append("metadata should map names to text values")
    tools = meta.get("allowed-tools")
    if tools is not None and not isinstance(tools, str):
        warnings.append("allowed-tools should be one line of tool names separated by spaces")
    extra = sorted(set(meta) - SPEC_FIELDS)
    if extra:
        warnings.append(f"fields not in the specification (kept as metadata): {', '.join(extra)}")
    return warnings


def looks_like_template(folder: str, name: str, description: str) -> bool:
    """A template or example skill (`template/`, "Replace with a description…") is not a skill to run."""
    return (
        folder.lower() in TEMPLATE_FOLDERS
        or name.lower() in TEMPLATE_FOLDERS
        or bool(_TEMPLATE_TEXT.search(description))
    )


def license_of(metadata: dict[str, Any], texts: dict[str, str], assets: list[dict[str, Any]]) -> str:
    """The licence as shown to students: the front matter's, else a bundled licence file's name."""
    declared = metadata.get("license")
    if isinstance(declared, str) and declared.strip():
        return " ".join(declared.split())[:200]
    files = set(texts) | {a["path"] for a in assets}
    bundled = next((f for f in LICENSE_FILES if f in files), None)
    return f"See {bundled} (bundled)" if bundled else ""


# A tool name, with an optional parenthesised pattern that may itself hold spaces or commas: `Bash(python:*)`.
_TOOL = re.compile(r"[A-Za-z_][\w.-]*(?:\([^)]*\))?")


def allowed_tools(metadata: dict[str, Any]) -> list[str]:
    """`allowed-tools` as a list of names. The specification says space-separated; libraries in the wild also
    write `Read, Grep, Bash(python:*)` or a YAML list, so commas and list items separate names too."""
    tools = metadata.get("allowed-tools")
    if isinstance(tools, list):
        tools = " ".join(str(t) for t in tools)
    if not isinstance(tools, str):
        return []
    return _TOOL.findall(tools)


def grants_code(names: list[str]) -> bool:
    """Whether declared tools let the skill run code: a shell (`Bash`, `Bash(python:*)`) or Python."""
    return any(re.match(r"(?i)^(bash|shell|python|run_script|run_python|code)\b", name) for name in names)
