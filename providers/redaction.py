"""Removing secrets from text that may be shown or stored (reasons, traces, logs, operator pages).

What goes, for each stored key that is a real secret:
- the key itself and the forms a provider may echo it in: URL-encoded, base64 (at any alignment inside a
  longer base64 text), spaced out (`s k - p r o j …`), and any prefix of 8 or more of its characters
  (`sk-proj-Q7rT…`);
- a tail a provider shows of a masked key: 8 or more of its last characters standing alone, or 4 or more
  right after a mask (`****wxyz`, `…wxyz`, `•••wxyz`).
Every form is matched in one pass, longest first at each position, so a key is never half replaced by a
shorter fragment of itself. Text shaped like a provider key (`sk-…`, `sk-ant-…`, `AIza…`) goes too.

Nothing else: a fragment inside an ordinary word or number (`succeeded`, `0.050000`) is not a key's echo,
and a placeholder key (`not-needed`, `EMPTY`, `sk-no-key-required`: words, no randomness) is not a secret.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from urllib.parse import quote, quote_plus

MARK = "[redacted]"
MIN_PREFIX = 8  # a key's opening characters shown: at least this many are an echo of it
MIN_TAIL = 4  # a key's last characters after a mask
MIN_BARE_TAIL = 8  # a key's last characters standing alone
MIN_SECRET = 8
# sk- (OpenAI, DeepSeek, sk-ant- for Anthropic) and AIza (Google): long runs of key characters after a
# non-key character, so "task-…", "desk-…" and "skill-…" never match.
_KEY_SHAPES = re.compile(r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]{16,}|AIza[A-Za-z0-9_-]{20,})")
_PLACEHOLDER = re.compile(r"[A-Za-z]{1,12}(?:[-_ ][A-Za-z]{1,12})*")
_AFTER_MASK = r"(?:(?<=[*•#…])|(?<=\.\.\.))"  # right after a masking character or "..."
_KEY_CHAR = r"[A-Za-z0-9]"


def is_secret(key: str | None) -> bool:
    """Whether a stored key is worth hiding: long enough, and not a placeholder made of words."""
    return bool(key) and len(key or "") >= MIN_SECRET and not _PLACEHOLDER.fullmatch(key or "")


def _base64_forms(key: str) -> list[str]:
    """The key's bytes as they appear inside base64 text at each of the three alignments (the characters
    that depend on neighbouring bytes left out)."""
    data = key.encode()
    forms = []
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + data + b"\0\0").decode()
            start = -(-offset * 4 // 3) if offset else 0  # the first character wholly from the key's bytes
            end = (offset + len(data)) * 4 // 3
            forms.append(text[start:end])
    return forms


def _longest_prefix(key: str, shortest: int) -> str:
    """Matches key[:n] for the largest n >= shortest that the text holds (nested optional groups, greedy)."""
    rest = "".join(f"(?:{re.escape(c)}" for c in key[shortest:]) + ")?" * (len(key) - shortest)
    return re.escape(key[:shortest]) + rest


def _longest_suffix(key: str, shortest: int, longest: int) -> str:
    """Matches key[-n:] for shortest <= n <= longest, as long as the text allows."""
    start = len(key) - longest
    head = "".join("(?:" for _ in range(start, len(key) - shortest))
    head += "".join(f"{re.escape(c)})?" for c in key[start : len(key) - shortest])
    return head + re.escape(key[-shortest:])


@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    parts: list[str] = []
    for key in secrets:
        encoded = {quote(key, safe=""), quote_plus(key), *_base64_forms(key)} - {key}
        parts.extend(re.escape(f) for f in sorted(encoded, key=len, reverse=True) if len(f) >= MIN_PREFIX)
        parts.append(r"\s+".join(re.escape(c) for c in key))  # spaced out
        parts.append(_longest_prefix(key, MIN_PREFIX))  # the key, or as much of its start as is shown
        bare = _longest_suffix(key, MIN_BARE_TAIL, len(key) - 1)
        parts.append(rf"(?<!{_KEY_CHAR}){bare}(?!{_KEY_CHAR})")
        masked = _longest_suffix(key, MIN_TAIL, MIN_BARE_TAIL - 1)
        parts.append(rf"{_AFTER_MASK}{masked}(?!{_KEY_CHAR})")
    return re.compile("|".join(parts))


def redact(text: str, *secrets: str | None) -> str:
    real = tuple(dict.fromkeys(s for s in secrets if s and is_secret(s)))
    if real:
        text = _pattern(real).sub(MARK, text)
    return _KEY_SHAPES.sub(MARK, text)
