"""Quality checks on a run's output (the spec's `checks:` block, docs/workflows.md "Checks").

Each check reads one step's output (the last step's unless it names another) and says passed or not, with a
score from 0 to 1 and a short reason. All but the rubric are plain functions of the text; the rubric asks a
judge model, through a callable the engine passes in (runs/quality.py), so this module makes no calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from catalog.check_rules import check_name

NO_VERDICT = "no verdict: "
MAX_CHECKED_CHARS = 200_000  # patterns and parsing never see more than this of an output
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_FENCED_JSON = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


class JudgeFailed(Exception):
    """The judge could not give a verdict (unreachable, or an answer that is not the JSON asked for)."""


@dataclass
class Verdict:
    scores: dict[str, float]
    reason: str = ""
    call: dict[str, Any] = field(default_factory=dict)  # the judge call as the trace records it


Judge = Callable[[dict[str, Any], str], Verdict]


@dataclass
class CheckResult:
    name: str
    kind: str
    passed: bool
    score: float
    reason: str
    step: str = ""
    call: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """For the run row, the API and runworkflow: the judge call stays in trace.json."""
        data = asdict(self)
        data.pop("call")
        return data


def applies(check: dict[str, Any], inputs: dict[str, Any]) -> bool:
    when = check.get("when")
    if not when:
        return True
    value = inputs.get(when["input"])
    return value == when["equals"] if "equals" in when else bool(value)


def evaluate(
    spec: dict[str, Any], *, inputs: dict[str, Any], outputs: dict[str, str], files: set[str], judge: Judge
) -> list[CheckResult]:
    """Every check of the spec that applies to these inputs, in the spec's order."""
    last = spec["steps"][-1]["id"]
    results = []
    for check in spec.get("checks") or []:
        if not applies(check, inputs):
            continue
        step = check.get("step", last)
        text = (outputs.get(step) or "")[:MAX_CHECKED_CHARS]
        passed, score, reason, call = _KINDS[check["kind"]](check, text, files, judge)
        results.append(
            CheckResult(check_name(check), check["kind"], passed, round(score, 3), reason, step, call or None)
        )
    return results


def summary(results: list[CheckResult]) -> str:
    """The failed checks in one line, for the run's reason: "sections (missing: Outline); length (…)"."""
    return "; ".join(f"{r.name} ({r.reason})" for r in results if not r.passed)


Outcome = tuple[bool, float, str, dict[str, Any] | None]


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def headings(text: str) -> list[str]:
    return [_normal(m.group(1)) for m in _HEADING.finditer(text)]


def _sections(check: dict[str, Any], text: str, files: set[str], judge: Judge) -> Outcome:
    found = headings(text)
    missing = [h for h in check["headings"] if not any(_normal(h) in heading for heading in found)]
    score = 1 - len(missing) / len(check["headings"])
    if missing:
        return False, score, "missing: " + ", ".join(missing), None
    return True, score, f"all {len(check['headings'])} sections present", None


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def _length(check: dict[str, Any], text: str, files: set[str], judge: Judge) -> Outcome:
    words = word_count(text)
    low, high = check.get("min_words"), check.get("max_words")
    if low is not None and words < low:
        return False, words / low if low else 0.0, f"{words} words, at least {low} wanted", None
    if high is not None and words > high:
        return False, high / words, f"{words} words, at most {high} wanted", None
    return True, 1.0, f"{words} words", None


def _patterns(check: dict[str, Any], text: str, files: set[str], judge: Judge) -> Outcome:
    absent = [p for p in check.get("must_match") or [] if not re.search(p, text, re.MULTILINE)]
    present = [p for p in check.get("must_not_match") or [] if re.search(p, text, re.MULTILINE)]
    total = len(check.get("must_match") or []) + len(check.get("must_not_match") or [])
    problems = [f"no match for /{p[:60]}/" for p in absent] + [f"must not contain /{p[:60]}/" for p in present]
    if problems:
        return False, 1 - len(problems) / total, "; ".join(problems), None
    return True, 1.0, f"all {total} patterns hold", None


def parse_json(text: str) -> Any:
    """The output as JSON: the whole text, else its first fenced ```json block. ValueError when neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    match = _FENCED_JSON.search(text)
    if match is None:
        raise ValueError("the output is not JSON and has no ```json block")
    return json.loads(match.group(1))


def _json_schema(check: dict[str, Any], text: str, files: set[str], judge: Judge) -> Outcome:
    try:
        data = parse_json(text)
    except ValueError as exc:
        return False, 0.0, str(exc).split(":")[0], None
    error = next(iter(sorted(Draft202012Validator(check["schema"]).iter_errors(data), key=str)), None)
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "the top level"
        return False, 0.0, f"at {where}: {error.message[:160]}", None
    return True, 1.0, "valid against the schema", None


def cited(text: str, files: set[str]) -> list[str]:
    """The skill files the text names, by path (references/tool-use.md) or by file name (tool-use.md)."""
    found = []
    for path in sorted(files):
        name = path.rsplit("/", 1)[-1]
        if path in text or re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w-])", text):
            found.append(path)
    return found


def _references(check: dict[str, Any], text: str, files: set[str], judge: Judge) -> Outcome:
    if not files:
        return True, 1.0, "the skills have no files to cite", None
    wanted = min(check["min"], len(files))
    found = cited(text, files)
    if len(found) < wanted:
        return False, len(found) / wanted, f"cites {len(found)} of the skills' files, at least {wanted} wanted", None
    return True, 1.0, f"cites {', '.join(found[:5])}", None


def _rubric(check: dict[str, Any], text: str, files: set[str], judge: Judge) -> Outcome:
    criteria = check["criteria"]
    try:
        verdict = judge(check, text)
    except JudgeFailed as exc:
        return False, 0.0, f"{NO_VERDICT}{exc}", getattr(exc, "call", None)
    weights = {c["name"]: float(c.get("weight", 1)) for c in criteria}
    total = sum(weights.values())
    score = round(sum(weights[name] * verdict.scores.get(name, 0.0) for name in weights) / total, 6)  # 0.7 is 0.7
    lowest = min(weights, key=lambda name: verdict.scores.get(name, 0.0))
    passed = score >= check["threshold"]
    why = f"score {score:.2f}, {'at least' if passed else 'below'} {check['threshold']:g}"
    if not passed:
        why += f"; weakest: {lowest} {verdict.scores.get(lowest, 0.0):.2f}"
    return passed, score, why, verdict.call


_KINDS: dict[str, Callable[[dict[str, Any], str, set[str], Judge], Outcome]] = {
    "sections": _sections,
    "length": _length,
    "patterns": _patterns,
    "json_schema": _json_schema,
    "references": _references,
    "rubric": _rubric,
}
