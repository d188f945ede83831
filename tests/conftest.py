from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from catalog.models import Workflow
from catalog.services import sync_workflows

from .factories import UserFactory
from .support.connections import connect
from .support.fake_llm import FakeLLM

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(settings.BASE_DIR).parent / "shared"))
SHARED_SKILLS = SHARED_DIR / "skills" / "ai-research-skills"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def catalog(db) -> Iterator[Workflow]:
    """The project's own workflows and skills, loaded from workflows/ and skills/."""
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    yield Workflow.objects.get(slug="learn-agentic-ai")


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeLLM]]:
    """The stand-in provider (tests/support/fake_llm.py) on a random port: call it once per server a test
    needs, with FakeLLM's arguments (`fake_server("anthropic", usage="measured")`); all stop when the test ends."""
    started: list[FakeLLM] = []

    def start(flavour: str = "openai", **options: Any) -> FakeLLM:
        server = FakeLLM(flavour, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def openai(catalog, fake_server) -> FakeLLM:
    """An OpenAI stand-in with a saved, checked connection to it (a test may push its script before running)."""
    server = fake_server("openai")
    connect(server)
    return server


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch):
    # Belt and braces: no test may reach a real provider, whatever a model name says.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def count_queries():
    """Queries one GET makes, with the page: list pages must not grow with their rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(client, url: str) -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(url).content.decode()
        return len(ctx.captured_queries), page

    return count
