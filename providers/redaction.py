"""Removing secrets from text that may be shown or stored (reasons, traces, logs).

What goes: each known secret in full, any run of 4 or more of its trailing characters (providers echo a
masked key such as `sk-pro***wxyz`), and text shaped like a provider key (`sk-…`, `sk-ant-…`, `AIza…`).
Nothing else: words such as `skill-code-review` or `skeleton-of-thought` stay as they are.
"""

from __future__ import annotations

import re

MARK = "[redacted]"
MIN_TAIL = 4
# sk- (OpenAI, DeepSeek, sk-ant- for Anthropic) and AIza (Google): long runs of key characters after a
# non-key character, so "task-…", "desk-…" and "skill-…" never match.
_KEY_SHAPES = re.compile(r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]{16,}|AIza[A-Za-z0-9_-]{20,})")


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if not secret or len(secret) < MIN_TAIL:
            continue
        for length in range(len(secret), MIN_TAIL - 1, -1):  # the full key first, then its longest tail shown
            tail = secret[-length:]
            if tail in text:
                text = text.replace(tail, MARK)
    return _KEY_SHAPES.sub(MARK, text)
