"""Prompt and artifact templates: Jinja2's SandboxedEnvironment, always.

Spec authors (operators) write templates; users only supply data. Inputs, step outputs and skill text are
passed in as variables and never rendered as templates themselves, so `{{ 7*7 }}` typed into a form stays
literal. The `untrusted` filter fences user data in the prompt so the model can tell it apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(Exception):
    pass


def _untrusted(value: Any) -> str:
    text = value if isinstance(value, str) else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = text.replace("</untrusted>", "</ untrusted>")
    return f"<untrusted>{text}</untrusted>"


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["untrusted"] = _untrusted
    return env


@lru_cache(maxsize=512)
def _compiled(source: str) -> Any:
    """Compiling is most of a render's cost, and a worker renders the same few templates for every run."""
    return environment().from_string(source)


def check(source: str) -> None:
    try:
        environment().parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return _compiled(source).render(**context)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc
    except Exception as exc:  # undefined names, sandbox refusals: a spec problem, told plainly
        raise TemplateError(f"template could not be rendered: {exc}") from exc
