"""How a skill's page shows its content: SKILL.md and every readable text file rendered (Markdown through
runs.rendering's markdown-it + nh3 path, code highlighted by Pygments, anything else escaped in a <pre>),
and the metadata as a plain list of strings rather than a Python dict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

from runs.rendering import markdown_to_html

from .models import SkillVersion

MAX_SHOWN_CHARS = 100_000  # a longer file is shown up to here, and says so
PLAIN = {"text", "txt", "csv", "tsv", "log"}


@dataclass(frozen=True)
class ShownFile:
    path: str
    html: str
    cut: bool


def render_text(path: str, text: str) -> str:
    """Safe HTML for one text file: Markdown rendered and sanitised, code highlighted, the rest escaped."""
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if extension in ("md", "markdown"):
        return f'<div class="markdown">{markdown_to_html(text)}</div>'
    if extension not in PLAIN:
        try:
            lexer = get_lexer_for_filename(path, stripnl=False)
        except ClassNotFound:
            lexer = None
        if lexer is not None:  # Pygments escapes what it highlights
            return highlight(text, lexer, HtmlFormatter(cssclass="highlight file-view"))
    return f'<pre class="file-view">{escape(text)}</pre>'


def shown_files(version: SkillVersion) -> list[ShownFile]:
    files = [
        ShownFile(
            "SKILL.md", render_text("SKILL.md", version.body[:MAX_SHOWN_CHARS]), len(version.body) > MAX_SHOWN_CHARS
        )
    ]
    for path, text in sorted(version.references.items()):
        files.append(ShownFile(path, render_text(path, text[:MAX_SHOWN_CHARS]), len(text) > MAX_SHOWN_CHARS))
    return files


def metadata_items(metadata: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """[(key, ["value"] or ["name: value", ...])]: a nested mapping or list becomes lines, never a repr."""
    items = []
    for key, value in metadata.items():
        if isinstance(value, dict):
            lines = [f"{k}: {_text(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            lines = [_text(v) for v in value]
        else:
            lines = [_text(value)]
        items.append((str(key), lines))
    return items


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)
