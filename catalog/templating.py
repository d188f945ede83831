"""Prompt and artifact templates: Jinja2's SandboxedEnvironment, always, with a time and size limit.

Spec authors (operators) write templates; users only supply data. Inputs, step outputs and skill text are
passed in as variables and never rendered as templates themselves, so `{{ 7*7 }}` typed into a form stays
literal. The `untrusted` filter fences user data in the prompt so the model can tell it apart, and `defuse`
keeps fenced text from closing (or opening) any of our fences, whatever its case or spacing.

A template cannot burn the server: a render over RENDER_SECONDS or an output over RENDER_MAX_CHARS is a
TemplateError. Sizes are checked where values flow (calls, filters, attribute and item reads, `*`, `**`,
`%`, `+`, `~`) so a huge string is refused before it is built, and the clock is checked on every line the template runs.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from functools import lru_cache, wraps
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_SECONDS = 1.0
RENDER_MAX_CHARS = 400_000
FENCE_TAGS = ("untrusted", "skill_reference", "skill_instructions")
# An opening or closing tag of one of our fences as a model may read it: any case, any spacing.
_FENCE_TAG = re.compile(r"<(?=\s*/?\s*(?:" + "|".join(FENCE_TAGS) + r")(?![A-Za-z0-9_-]))", re.IGNORECASE)
_HUGE_WIDTH = re.compile(r"\d{7,}")  # a format width of millions of characters


class TemplateError(Exception):
    pass


class _TooCostly(TemplateError):
    pass


def defuse(text: str) -> str:
    """Text that cannot open or close a fence: the `<` of any fence tag becomes `&lt;`."""
    return _FENCE_TAG.sub("&lt;", text)


def _untrusted(value: Any) -> str:
    text = value if isinstance(value, str) else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"<untrusted>{defuse(text)}</untrusted>"


def _sized(value: Any) -> Any:
    """The value, unless it is a string or sequence larger than a template may handle."""
    if isinstance(value, str | bytes | list | tuple) and len(value) > RENDER_MAX_CHARS:
        raise _TooCostly(f"a value of {len(value):,} characters is larger than a template allows")
    if isinstance(value, int) and value.bit_length() > 100_000:
        raise _TooCostly("a number that large is not allowed in a template")
    return value


def _width(value: Any) -> None:
    """A count or width argument (center, ljust, indent, …): refused when it alone would exceed the limit."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > RENDER_MAX_CHARS:
        raise _TooCostly(f"the width {value} is larger than a template allows")


def _format_string(value: Any) -> None:
    if isinstance(value, str) and _HUGE_WIDTH.search(value):
        raise _TooCostly("a format width that large is not allowed in a template")


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice"})


class _Deadline:
    """Checked on every line the compiled template runs (sys.settrace, template frames only)."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.until:
            raise _TooCostly(f"rendering took longer than {RENDER_SECONDS:g} s")

    def tracer(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if frame.f_code.co_filename != "<template>":
            return None
        self.check()
        return self._line

    def _line(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        self.check()
        return self._line


class _BoundedCodeGenerator(CodeGenerator):
    """`a ~ b` joins through the environment, so its size is checked before the string is built."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    @staticmethod
    def bounded_join(parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        if sum(map(len, texts)) > RENDER_MAX_CHARS:
            raise _TooCostly("a joined value would be larger than a template allows")
        return "".join(texts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        sizes = [len(v) if isinstance(v, str | list | tuple) else None for v in (left, right)]
        if operator == "*" and None in sizes and any(sizes):  # a sequence repeated n times
            count = right if sizes[0] is not None else left
            if isinstance(count, int) and max(s or 0 for s in sizes) * count > RENDER_MAX_CHARS:
                raise _TooCostly("a repeated value would be larger than a template allows")
        if operator == "+" and None not in sizes and sum(s or 0 for s in sizes) > RENDER_MAX_CHARS:
            raise _TooCostly("a joined value would be larger than a template allows")
        power = operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0
        if power and max(left.bit_length(), 1) * right > 100_000:
            raise _TooCostly(f"the power {left} ** {right} is too large for a template")
        if operator == "%":
            _format_string(left)
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in _WIDTH_METHODS:
            for value in (*args, *kwargs.values()):
                _width(value)
        wrapped = getattr(__obj, "__wrapped__", None)  # str.format, as the sandbox wraps it
        if getattr(wrapped, "__name__", "") in ("format", "format_map"):
            _format_string(getattr(wrapped, "__self__", ""))
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        return _sized(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return _sized(super().getitem(obj, argument))


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)  # keeps jinja_pass_arg, so context- and environment-taking filters still get theirs
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name in _WIDTH_FILTERS:
            for value in (*args[1:], *kwargs.values()):
                _width(value)
        if name == "format" and args:
            _format_string(args[0])
        return _sized(function(*args, **kwargs))

    return bounded


@lru_cache(maxsize=1)
def environment() -> BoundedSandbox:
    env = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["untrusted"] = _untrusted
    for name, function in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, function)
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
        template = _compiled(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc
    deadline = _Deadline(RENDER_SECONDS)
    previous = sys.gettrace()
    sys.settrace(deadline.tracer)
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > RENDER_MAX_CHARS:
                raise _TooCostly(f"the rendered text is longer than {RENDER_MAX_CHARS:,} characters")
            deadline.check()
            parts.append(chunk)
        return "".join(parts)
    except _TooCostly as exc:
        raise TemplateError(f"template is too costly to render: {exc}") from None
    except Exception as exc:  # undefined names, sandbox refusals: a spec problem, told plainly
        raise TemplateError(f"template could not be rendered: {exc}") from exc
    finally:
        sys.settrace(previous)
