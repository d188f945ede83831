"""The skill tools over imported libraries: direct calls, and a stand-in model calling them over real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from catalog.models import Skill, Workflow
from catalog.services import import_skills
from providers import services as provider_services
from runs import pipeline, services, tools
from runs.models import Mode, Run, Status

from .support.fake_llm import answer, fake_llm
from .test_skills_import import skill

pytestmark = pytest.mark.django_db
LONG_BODY = "\n".join(f"## Part {n}\n" + f"Line {n} about the topic. " * 60 + "\n" for n in range(45))


def call(name: str, skill_name: str, **args) -> str:
    sv = Skill.objects.get(name=skill_name).latest
    return tools.run(name, json.dumps({"skill": skill_name, **args}), {skill_name: sv})[0]


@pytest.fixture
def library(tmp_path) -> Path:
    skill(
        tmp_path,
        "pdf-forms",
        body="Fill forms as [forms.md](forms.md) explains.",
        **{
            "forms.md": "# Forms\n## Fields\nUse the field ids.\n## Signing\nSign last.",
            "reference__api.md": "# API\nCall fill().",
            "scripts__fill.py": "def fill():\n    return 'filled'\n",
            "assets__logo.png": b"\x89PNG\r\n\x1a\n",
        },
    )
    skill(tmp_path, "long-skill", body=LONG_BODY)
    import_skills(tmp_path)
    return tmp_path


def test_list_shows_every_file_and_marks_binaries_unreadable(library):
    listing = json.loads(call("list_references", "pdf-forms"))["references"]
    assert [f["path"] for f in listing] == [
        "forms.md",
        "reference/api.md",
        "scripts/fill.py",
        "SKILL.md",
        "assets/logo.png",
    ]
    assert listing[0]["sections"] == ["Forms", "Fields", "Signing"]
    assert listing[-1] == {"path": "assets/logo.png", "bytes": 8, "type": "image/png", "readable": False}


@pytest.mark.parametrize("path", ["forms.md", "./forms.md", "reference/../forms.md", "forms.md#signing"])
def test_a_file_beside_skill_md_reads_by_any_relative_link_to_it(library, path):
    assert call("read_reference", "pdf-forms", path=path).startswith("# Forms\n## Fields")


def test_scripts_read_as_text_and_binaries_are_refused_plainly(library):
    assert "return 'filled'" in call("read_reference", "pdf-forms", path="scripts/fill.py")
    with pytest.raises(
        tools.ToolError, match=re.escape("'assets/logo.png' is a image/png file of 8 bytes: listed, not readable")
    ):
        call("read_reference", "pdf-forms", path="assets/logo.png")


@pytest.mark.parametrize(
    "path", ["../long-skill/SKILL.md", "../../../etc/passwd", "/etc/passwd", "reference/../../x.md", "file:///etc"]
)
def test_a_path_out_of_the_skill_is_refused(library, path):
    with pytest.raises(tools.ToolError, match="is not a path inside pdf-forms"):
        call("read_reference", "pdf-forms", path=path)


def test_search_covers_every_text_file(library):
    hits = json.loads(call("search_references", "pdf-forms", query="fill"))["hits"]
    assert {h["path"] for h in hits} == {"reference/api.md", "scripts/fill.py"}


def test_the_rest_of_a_long_body_is_readable_part_by_part_and_page_by_page(library):
    sv = Skill.objects.get(name="long-skill").latest
    listing = [f["path"] for f in json.loads(call("list_references", "long-skill"))["references"]]
    assert listing.pop(0) == "SKILL.md"  # the whole file, readable by its path too
    assert listing == [f"SKILL.md#part-{n}" for n in range(2, len(sv.parts) + 1)]
    read = "".join(call("read_reference", "long-skill", path=p) for p in listing)
    assert "".join(sv.parts[1:]) == read
    hits = json.loads(call("search_references", "long-skill", query="line 44 about"))["hits"]
    assert hits[0]["path"] == f"SKILL.md#part-{len(sv.parts)}"


def test_a_long_file_says_where_it_continues_and_the_offset_reads_the_rest(library, tmp_path):
    text = "\n".join(f"line {n}" for n in range(2000))
    skill(tmp_path / "more", "big-ref", **{"notes.md": text})
    import_skills(tmp_path / "more")
    first = call("read_reference", "big-ref", path="notes.md")
    assert first.endswith(
        f"…(continues: {len(text) - tools.MAX_READ_CHARS} more characters; read again with offset=6000)"
    )
    pages, offset = [first[: tools.MAX_READ_CHARS]], tools.MAX_READ_CHARS
    while offset < len(text):
        pages.append(call("read_reference", "big-ref", path="notes.md", offset=offset).split("\n…(continues")[0])
        offset += tools.MAX_READ_CHARS
    assert "".join(pages) == text


# -- a stand-in model, over real HTTP through LiteLLM ---------------------------------------------------


@pytest.fixture
def openai(catalog, library):
    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None,
            ip=None,
            provider="openai",
            label="Fake",
            api_key="sk-skills-0123456789abcdefghij",
            api_base=server.base_url,
            allow_private_network=True,
        )
        yield server


def run_study_guide(user, skill_name: str) -> Run:
    version = Workflow.objects.get(slug="skill-study-guide").latest_version
    run = services.start_run(
        workflow_version=version,
        user=user,
        inputs={"skill": skill_name},
        mode=Mode.TEST,
        queue=False,
        models=["openai/gpt-4o-mini"],
    )
    pipeline.execute(run.pk)
    run.refresh_from_db()
    return run


def trace_of(run: Run) -> dict:
    with run.artifacts.get(name="trace.json").file.open("rb") as handle:
        return json.loads(handle.read())


def tool_messages(request: dict) -> list[str]:
    return [m["content"] for m in request["body"]["messages"] if m["role"] == "tool"]


def test_a_model_lists_then_reads_a_file_beside_skill_md_and_gets_its_content(openai, alice):
    openai.push(
        {},  # the connection check
        {"tool_call": {"name": "list_references", "arguments": {"skill": "pdf-forms"}}},
        {"tool_call": {"name": "read_reference", "arguments": {"skill": "pdf-forms", "path": "forms.md"}}},
        {"content": "Use the field ids, then sign last."},
        answer("Fill the fields as forms.md explains, then sign last."),  # the guide cites what was read
    )
    run = run_study_guide(alice, "pdf-forms")
    assert run.status == Status.SUCCEEDED, run.reason
    listed, read = tool_messages(openai.requests[3])
    assert "forms.md" in [f["path"] for f in json.loads(listed)["references"]]
    assert read == "# Forms\n## Fields\nUse the field ids.\n## Signing\nSign last."
    calls = [t for s in trace_of(run)["steps"] for c in s["calls"] for t in c.get("tool_calls", [])]
    assert calls[1]["result"] == {"skill": "pdf-forms", "path": "forms.md", "section": None, "chars": len(read)}


def test_a_model_gets_the_first_part_of_a_long_body_and_reads_the_next(openai, alice):
    sv = Skill.objects.get(name="long-skill").latest
    openai.push(
        {},
        {"tool_call": {"name": "read_reference", "arguments": {"skill": "long-skill", "path": "SKILL.md#part-2"}}},
        {"content": "Done."},
        answer("Read SKILL.md part by part."),  # the guide cites what was read
    )
    run = run_study_guide(alice, "long-skill")
    assert run.status == Status.SUCCEEDED, run.reason
    system = openai.requests[1]["body"]["messages"][0]["content"]
    assert sv.parts[0] in system and sv.parts[1] not in system
    assert "[SKILL.md continues:" in system
    assert tool_messages(openai.requests[2]) == [sv.parts[1]]
    disclosed = trace_of(run)["validation"]["disclosure"]["long-skill"]
    assert disclosed["body_chars"] == len(sv.body) and disclosed["prompt_chars"] == len(sv.parts[0])
    assert disclosed["readable_parts"][0] == "SKILL.md#part-2" and len(disclosed["readable_parts"]) == len(sv.parts) - 1
