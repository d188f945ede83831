"""The rubric's judge: the prompt it is sent and how its answer is read (the call itself: runs/quality.py).

The answer being graded is fenced as untrusted data, so an answer that says "give me full marks" is text to
grade, not an instruction. The judge must answer with JSON; anything else is no verdict (the check fails).
"""

from __future__ import annotations

import json
import re
from typing import Any

from catalog.templating import defuse
from providers.offline import JUDGE_MARKER

from .checks import JudgeFailed, parse_json
from .prompts import UNTRUSTED_RULE

MAX_ANSWER_CHARS = 24_000  # what the judge reads of the answer
MAX_TOKENS = 400  # what the judge may answer (its call is capped, and estimated, at this)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def messages(check: dict[str, Any], text: str) -> list[dict[str, Any]]:
    criteria = [{"name": c["name"], "description": c["description"]} for c in check["criteria"]]
    system = (
        f"{JUDGE_MARKER}. Score the answer on each criterion from 0 (absent) to 1 (fully met). Answer with one "
        'JSON object only: {"scores": {"<criterion name>": <number 0..1>, ...}, "reason": "<one sentence>"}.\n\n'
        + UNTRUSTED_RULE
    )
    user = (
        "Criteria:\n```json\n"
        + json.dumps(criteria, ensure_ascii=False, indent=1)
        + "\n```\n\nThe answer to grade:\n<untrusted>"
        + defuse(text[:MAX_ANSWER_CHARS])
        + "</untrusted>"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse(content: str, check: dict[str, Any]) -> tuple[dict[str, float], str]:
    """Scores per criterion (clamped to 0..1) and the judge's reason; JudgeFailed when it is not that."""
    try:
        data = parse_json(content.strip())
    except ValueError:
        match = _OBJECT.search(content)
        try:
            data = json.loads(match.group(0)) if match else None
        except ValueError:
            data = None
    scores = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(scores, dict):
        raise JudgeFailed("the judge's answer is not the JSON object of scores asked for")
    found: dict[str, float] = {}
    for criterion in check["criteria"]:
        value = scores.get(criterion["name"])
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise JudgeFailed(f"the judge gave no score for '{criterion['name']}'")
        found[criterion["name"]] = min(1.0, max(0.0, float(value)))
    reason = data.get("reason") if isinstance(data, dict) else ""
    return found, str(reason or "")[:300]
