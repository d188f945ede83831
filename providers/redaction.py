"""Removing secrets from text that may be shown or stored (reasons, traces, logs)."""

from __future__ import annotations

import re

_KEYLIKE = re.compile(r"\b(sk|key|api[_-]?key|AIza)[-_A-Za-z0-9]{8,}", re.IGNORECASE)


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)
