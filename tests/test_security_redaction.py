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


# --- Round three: encodings a provider echoes, keys of any shape, placeholders, words and numbers ---------

REAL_KEYS = [
    KEY,
    "sk-ant-api03-Zq8Jm2Lx7Vb4Nc1Rt6Yw9Pk3Hd5Gf0Sa-Ue2Io7Ow",
    "AIzaSyB7mQ2xLp9Vc4Nk1Rt6Yw8Hd5Gf0SaZe3",
    "gsk_4Fq8Zm2Lx7Vb4Nc1Rt6Yw9Pk3Hd5Gf0SaUe2Io7",  # not shaped like sk-/AIza: only the stored key says it
    "3f9c2a7b1e8d4c6a9b0f2e7d1c8a4b6e",  # hex, no letters prefix
    "Zx81kqLm9PwQ2vR7tY4uI0oP3aS6dF1Q0000",  # ends in zeros
]
PLACEHOLDERS = ["not-needed", "EMPTY", "sk-no-key-required", "ollama", "lm-studio", "none", "dummy_key"]
KEY_TEXT = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789_-", min_size=20, max_size=64)
CONTEXT = 'provider said: "{}" (401)'  # no character a key could continue with


def echoes(key: str) -> dict[str, str]:
    """The forms providers and proxies were seen to send a key back in."""
    import base64
    from urllib.parse import quote

    return {
        "whole": key,
        "url": quote(f"key={key}", safe="="),
        "base64": base64.b64encode(f"Bearer {key}".encode()).decode(),
        "base64-alone": base64.b64encode(key.encode()).decode(),
        "spaced": " ".join(key),
        "prefix": key[:10] + "…",
        "masked-tail": "****" + key[-4:],
        "bare-tail": "ending in " + key[-9:],
    }


def leftovers(out: str, key: str, length: int = 8) -> list[str]:
    """Every run of `length` characters of the key still readable in the output."""
    return [key[i : i + length] for i in range(len(key) - length + 1) if key[i : i + length] in out]


@given(KEY_TEXT.filter(lambda k: __import__("providers.redaction").redaction.is_secret(k)))
def test_any_stored_key_goes_whole_never_leaving_a_head_behind(key):
    """X1: replacing the key's short tails first would leave most of a key not shaped like sk-… readable."""
    assert redact(CONTEXT.format(key), key) == CONTEXT.format(MARK)


@pytest.mark.parametrize("key", REAL_KEYS)
@pytest.mark.parametrize("form", list(echoes(KEY)))
def test_every_echo_of_a_real_key_is_removed(key, form):
    import base64

    text = CONTEXT.format(echoes(key)[form])
    out = redact(text, key)
    assert MARK in out and not leftovers(out, key, 4 if form == "masked-tail" else 8), out
    if form.startswith("base64"):
        middle = base64.b64encode(key.encode()).decode()[4:-4]
        assert not leftovers(out, middle, 8), out
    if form == "spaced":
        assert not leftovers(out.replace(" ", ""), key, 8), out


ORDINARY = st.one_of(
    st.sampled_from(
        ["succeeded", "exceeded", "needed", "I needed help", "status", "can", "not", "EMPTY", "dummy", "lm", "studio"]
    ),
    st.from_regex(r"[a-z]{1,12}", fullmatch=True),
    st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False).map(str),
    st.integers(min_value=0, max_value=10**12).map(str),
)


@given(st.lists(ORDINARY, max_size=15), st.sampled_from([" ", ", ", '": "', "\n"]))
def test_ordinary_words_and_numbers_survive_every_real_and_placeholder_key(words, separator):
    text = separator.join(words)
    for key in [*REAL_KEYS, *PLACEHOLDERS]:
        assert redact(text, key) == text, key


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_a_placeholder_key_is_not_a_secret_and_the_trace_keeps_its_words(placeholder):
    trace = Trace()
    trace.hide(placeholder)
    trace.event("call", "I can help; the call succeeded, nothing exceeded", cost="0.050000")
    document = json.loads(trace.render({"status": "succeeded"}))
    assert document["run"] == {"status": "succeeded"}
    assert document["events"][0]["message"] == "I can help; the call succeeded, nothing exceeded"
    assert document["events"][0]["cost"] == "0.050000" and MARK not in json.dumps(document)


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["base64", "spaced", "prefix", "url"])
def test_a_provider_echoing_the_key_in_any_form_leaves_no_trace_on_the_operator_page(form, admin_client):
    from django.urls import reverse

    from providers import services
    from providers.models import ProviderConnection

    from .support.fake_llm import fake_llm

    key = REAL_KEYS[3]
    with fake_llm("openai") as server:
        connection = services.save_connection(
            actor=None, ip=None, provider="openai_compatible", label="Lab", api_key=key,
            api_base=server.base_url, allow_private_network=True, default_model="openai_compatible/llama3.2",
        )  # fmt: skip
        server.push({"status": 401, "message": f"Invalid key {echoes(key)[form]} for this project"})
        ok, message = services.test_connection(connection, actor=None, ip=None)
    assert not ok
    stored = ProviderConnection.objects.get(pk=connection.pk).status_message
    page = admin_client.get(reverse("settings:providers")).content.decode()
    for text in (message, stored, page):
        assert not leftovers(text, key) and not leftovers(text.replace(" ", ""), key), text
    assert MARK in stored
