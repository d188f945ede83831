"""The tools a step may offer beyond the skill-reference ones (runs/tools.py): the run's files and the code
sandbox. `list_files` and `read_file` read the run's input files (text extracted where it can be, paged) and
what its code wrote; `run_script` runs a script of a skill and `run_python` runs code the model wrote, both in
the sandbox (runs/sandbox.py). Code tools are offered only by steps that list them, and only when every skill
of the run that declares `allowed-tools` grants code (`Bash`, `Bash(python:*)`, …).
"""

from __future__ import annotations

import json
from typing import Any

from catalog.models import SkillVersion
from catalog.skill_rules import allowed_tools, grants_code

from . import extract, sandbox, tools
from .tools import ToolError
from .workspace import CODE_SUFFIXES, Workspace

FILE_TOOLS = ("list_files", "read_file")
CODE_TOOLS = ("run_script", "run_python")
MAX_CODE_CHARS = 100_000
MAX_ARGS = 20
LIMITS = sandbox.Limits()

_SPECS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "list_files": (
        "List the run's input files (read-only, under /inputs) and the files written to /outputs so far.",
        {},
        [],
    ),
    "read_file": (
        "Read the text of an input file (text extracted from PDF, Word, Excel and PowerPoint files) or of an "
        "output, a page at a time.",
        {
            "path": {"type": "string", "description": "The path as list_files gives it, e.g. /inputs/data.csv."},
            "offset": {"type": "integer", "description": "Optional character to start from, for long files."},
        },
        ["path"],
    ),
    "run_script": (
        "Run a script of the skill (.py with the sandbox's Python, .sh with bash) in a sandbox with no network. "
        "Input files are read-only under /inputs; write results to /outputs (they become the run's files).",
        {
            "skill": {"type": "string", "description": "The skill whose script to run."},
            "path": {"type": "string", "description": "The script's path in the skill, e.g. scripts/convert.py."},
            "args": {"type": "array", "items": {"type": "string"}, "description": "Command-line arguments."},
        },
        ["path"],
    ),
    "run_python": (
        "Run Python code in a sandbox with no network (pandas, openpyxl, pypdf, python-docx, python-pptx, "
        "matplotlib, pillow available). Input files are under /inputs (read-only); write results to /outputs.",
        {"code": {"type": "string", "description": "The Python program to run."}},
        ["code"],
    ),
}


def code_allowed(skills: dict[str, SkillVersion]) -> bool:
    """Every skill that declares allowed-tools must grant code; a skill that declares none does not narrow."""
    declared = [allowed_tools(sv.metadata) for sv in skills.values()]
    return all(grants_code(names) for names in declared if names)


def sandbox_refusal(spec: dict[str, Any], skills: dict[str, SkillVersion]) -> str | None:
    """Why a run whose steps offer code cannot run here (Validate refuses it), or None."""
    offers_code = any(set(step.get("tools", [])) & set(CODE_TOOLS) for step in spec["steps"])
    if not offers_code or not code_allowed(skills):
        return None
    reason = sandbox.unavailable()
    return f"This workflow runs code, and this server cannot run it safely: {reason}" if reason else None


def definitions(names: list[str], skills: dict[str, SkillVersion]) -> list[dict[str, Any]]:
    reference = [n for n in names if n not in FILE_TOOLS + CODE_TOOLS]
    ours = [n for n in names if n in FILE_TOOLS or (n in CODE_TOOLS and code_allowed(skills))]
    defs = tools.definitions(reference, skills) if reference and skills else []
    for name in ours:
        description, properties, required = _SPECS[name]
        if name == "run_script":
            properties = {**properties, "skill": {**properties["skill"], "enum": sorted(skills)}}
        parameters = {"type": "object", "properties": properties, "required": required}
        defs.append(
            {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}
        )
    return defs


def run(
    name: str, raw_arguments: str, skills: dict[str, SkillVersion], workspace: Workspace, remaining: float
) -> tuple[str, dict[str, Any]]:
    if name not in FILE_TOOLS + CODE_TOOLS:
        return tools.run(name, raw_arguments, skills)
    try:
        args = json.loads(raw_arguments or "{}")
        if not isinstance(args, dict):
            raise ValueError
    except ValueError:
        raise ToolError("The tool arguments were not a JSON object.") from None
    if name == "list_files":
        return _list_files(workspace)
    if name == "read_file":
        return _read_file(workspace, args, remaining)
    if name == "run_script":
        return _execute(workspace, _script_argv(args, skills), remaining)
    code = str(args.get("code") or "")
    if not code.strip():
        raise ToolError("Give the Python code to run.")
    if len(code) > MAX_CODE_CHARS:
        raise ToolError(f"The code is longer than {MAX_CODE_CHARS} characters.")
    return _execute(workspace, [sandbox.PYTHON, "-c", code], remaining, shown="python -c <code>")


def _list_files(workspace: Workspace) -> tuple[str, dict[str, Any]]:
    inputs = [
        {"path": f"/inputs/{f.name}", "bytes": f.size, "type": f.content_type, "input": f.input}
        for f in workspace.input_files()
    ]
    outputs = workspace.output_listing()
    listing = {"inputs": inputs, "outputs": outputs, "writable": ["/outputs", "/work"]}
    return json.dumps(listing), {"inputs": len(inputs), "outputs": len(outputs)}


def _read_file(workspace: Workspace, args: dict[str, Any], remaining: float) -> tuple[str, dict[str, Any]]:
    path = str(args.get("path", ""))[:300]
    try:
        offset = max(0, int(args.get("offset") or 0))
    except (TypeError, ValueError):
        raise ToolError("offset must be a whole number of characters.") from None
    text = extract.text_of(workspace, path, remaining)
    body = text[offset : offset + tools.MAX_READ_CHARS]
    end = offset + len(body)
    if end < len(text):  # nothing is cut without a way to read the rest
        body += f"\n…(continues: {len(text) - end} more characters; read again with offset={end})"
    return body, {"path": path, "chars": len(body), **({"offset": offset} if offset else {})}


def _script_argv(args: dict[str, Any], skills: dict[str, SkillVersion]) -> list[str]:
    skill_name = str(args.get("skill") or (next(iter(skills)) if len(skills) == 1 else ""))
    version = skills.get(skill_name)
    if version is None:
        raise ToolError(f"Unknown skill '{skill_name}'. Available: {', '.join(sorted(skills))}.")
    path = tools.normalize_path(str(args.get("path", ""))[:300])
    if path is None or path not in version.references:
        raise ToolError(f"No file '{args.get('path')}' in {skill_name}. Call list_references first.")
    runner = CODE_SUFFIXES.get("." + path.rsplit(".", 1)[-1]) if "." in path else None
    if runner is None:
        raise ToolError(f"'{path}' is not a script this sandbox runs (.py or .sh).")
    extra = args.get("args") or []
    if not isinstance(extra, list) or len(extra) > MAX_ARGS:
        raise ToolError(f"args must be a list of at most {MAX_ARGS} strings.")
    program = sandbox.PYTHON if runner == "python" else "/bin/bash"
    return [program, f"/skills/{skill_name}/{path}", *[str(a)[:1000] for a in extra]]


def _execute(workspace: Workspace, argv: list[str], remaining: float, shown: str = "") -> tuple[str, dict[str, Any]]:
    try:
        result = workspace.execute(argv, LIMITS, remaining)
    except sandbox.SandboxUnavailable as exc:
        raise ToolError(str(exc)) from None
    command = shown or " ".join(["python" if a == sandbox.PYTHON else a for a in argv])
    outputs = workspace.output_listing()
    for_model = {
        "exit_code": result.exit_code,
        "duration_ms": result.duration_ms,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "notes": result.notes,
        "outputs": outputs,
    }
    summary = {
        "command": command[:500],
        "exit_code": result.exit_code,
        "duration_ms": result.duration_ms,
        "stdout": result.stdout[: sandbox.TRACE_CHARS],
        "stderr": result.stderr[: sandbox.TRACE_CHARS],
        "stopped": result.stopped,
        "notes": result.notes,
        "outputs": outputs,
    }
    return json.dumps(for_model), summary
