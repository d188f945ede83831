"""Redaction in both directions: every form of a key goes, and nothing that is not a key goes with it."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from providers.redaction import MARK, redact
from runs.trace import Trace

KEY = "sk-proj-Q7rT2vX9kLm4Np8Zc3Wd6Yb1Hf5JgK0WXYZ"


@pytest.mark.parametrize(
    "leak",
    [
        f"Incorrect API key provided: {KEY}.",
        f"Incorrect API key provided: sk-proj-****{KEY[-4:]}.",  # OpenAI's masked echo: the last four
        f"key ending in {KEY[-9:]} was revoked",
        f"Bearer {KEY[:12]}…{KEY[-6:]}",
    ],
)
def test_it_removes_the_key_and_any_trailing_run_of_four_or_more_of_its_characters(leak):
    out = redact(leak, KEY)
    assert MARK in out
    assert KEY[-4:] not in out and KEY not in out


@pytest.mark.parametrize(
    "other_key",
    [
        "sk-ant-api03-" + "Ab1_" * 10,
        "sk-" + "0123456789abcdefghij",
        "AIza" + "SyB-x9_Qw" * 4,
    ],
)
def test_it_removes_text_shaped_like_a_provider_key_it_was_not_told_about(other_key):
    assert redact(f"upstream said: invalid key {other_key}, try again", KEY) == (
        f"upstream said: invalid key {MARK}, try again"
    )


@pytest.mark.parametrize(
    "text",
    [
        "skill-code-review",
        "skeleton-of-thought prompting",
        "keyboard-shortcuts-for-beginners",
        "api_key_rotation_explained",
        "task-abcdefghijklmnopqrstuvwxyz",
        "AIzaleas are not keys",
        "monkey-patching-considered-harmful",
    ],
)
def test_it_leaves_ordinary_words_alone(text):
    assert redact(text, KEY) == text


def test_a_skill_workflows_trace_keeps_its_name_and_topic():
    trace = Trace()
    trace.hide(KEY)
    document = json.loads(trace.render({"workflow": "skill-code-review", "topic": "skeleton-of-thought"}))
    assert document["run"] == {"workflow": "skill-code-review", "topic": "skeleton-of-thought"}


WORDS = st.one_of(
    st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True),
    st.sampled_from(["skill", "skeleton", "key", "keynote", "api", "of", "thought", "review", "learn"]),
)


@given(st.lists(WORDS, max_size=12), st.sampled_from([" ", "-", "_"]))
def test_text_without_a_key_in_it_comes_back_unchanged(words, separator):
    text = separator.join(words)
    assume("sk-" not in text)  # anything after "sk-" that is long enough is a key's shape, on purpose
    assert redact(text, KEY) == text
