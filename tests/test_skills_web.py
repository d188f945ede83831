"""Skills in the web app: the index with search and filters, the skill page, and where students pick one."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import Skill
from catalog.services import import_skills

from .test_skills_import import skill

pytestmark = pytest.mark.django_db


@pytest.fixture
def library(tmp_path, catalog):
    lib = tmp_path / "physics-lib"
    skill(lib, "optics", front="name: optics\ndescription: Lenses and mirrors.\nlicense: MIT")
    skill(
        lib,
        "pdf-forms",
        front="name: pdf-forms\ndescription: Fill PDF forms.\nlicense: Proprietary. LICENSE.txt has the terms\n"
        "compatibility: Needs a PDF reader\nallowed-tools: Read Grep",
        body="\n".join(f"## Part {n}\n" + "Words about forms. " * 60 for n in range(20)),
        **{"forms.md": "# Forms", "reference__api.md": "# API", "LICENSE.txt": "Terms", "logo.png": b"\x89PNG"},
    )
    skill(lib, "template", front="name: template\ndescription: Replace with what the skill does.")
    import_skills(lib)
    return lib


def test_the_index_lists_skills_with_their_licence_and_hides_templates_from_students(alice_client, library):
    page = alice_client.get(reverse("catalog:skills")).content.decode()
    assert 'href="/skills/optics/"' in page and 'href="/skills/pdf-forms/"' in page
    assert "Licence: Proprietary. LICENSE.txt has the terms" in page
    assert "/skills/template/" not in page
    assert alice_client.get("/skills/template/").status_code == 404


def test_staff_see_template_skills_flagged(admin_client, library):
    page = admin_client.get(reverse("catalog:skills")).content.decode()
    assert 'href="/skills/template/"' in page and '<span class="tag">template</span>' in page


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("?q=lenses", ["optics"]),
        ("?q=pdf+fill", ["pdf-forms"]),
        ("?library=physics-lib", ["optics", "pdf-forms"]),
        ("?library=skills", ["learn-agentic-ai"]),
        ("?license=MIT", ["learn-agentic-ai", "optics"]),
        ("?persona=student", ["learn-agentic-ai", "optics", "pdf-forms"]),
        ("?license=not-a-licence", ["learn-agentic-ai", "optics", "pdf-forms"]),
    ],
)
def test_the_index_searches_and_filters(alice_client, library, query, found):
    response = alice_client.get(reverse("catalog:skills") + query, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "<h1>" not in page  # HTMX gets the list fragment only
    listed = sorted(s.name for s in Skill.objects.all() if f'href="/skills/{s.name}/"' in page)
    assert listed == found


def test_the_skill_page_shows_licence_compatibility_files_and_what_the_prompt_got(alice_client, library):
    page = alice_client.get(reverse("catalog:skill", args=["pdf-forms"])).content.decode()
    assert "<dd>Proprietary. LICENSE.txt has the terms</dd>" in page
    assert "<dd>Needs a PDF reader</dd>" in page and "<dd>Read, Grep</dd>" in page
    assert '<span class="folder">reference/</span>' in page and "<code>api.md</code>" in page
    assert "<code>forms.md</code>" in page and "binary, listed but not readable" in page
    parts = len(Skill.objects.get(name="pdf-forms").latest.parts)
    assert parts > 1
    assert f"the rest is readable as <code>SKILL.md#part-2</code> to <code>SKILL.md#part-{parts}</code>" in page
    assert 'href="/workflows/skill-study-guide/?skill=pdf-forms"' in page


def test_the_skill_page_shows_the_import_warnings(alice_client, library, tmp_path):
    skill(tmp_path / "other", "Odd_Name", front="name: Odd_Name\ndescription: d")
    import_skills(tmp_path / "other")
    page = alice_client.get(reverse("catalog:skill", args=["odd-name"])).content.decode()
    assert "Import warnings" in page and "name &#x27;Odd_Name&#x27; breaks the specification" in page


def test_students_pick_a_skill_with_its_licence_and_never_a_template(alice_client, library):
    form = alice_client.get("/workflows/skill-quiz/").content.decode()
    assert (
        '<option value="pdf-forms">pdf-forms — Fill PDF forms. (licence: Proprietary. LICENSE.txt has the terms)'
        in form
    )
    assert 'value="template"' not in form
    response = alice_client.post("/workflows/skill-quiz/", {"skill": "template", "mode": "test"})
    assert response.status_code == 422


def test_the_catalog_search_finds_workflows_by_skill_description(alice_client, catalog):
    page = alice_client.get(reverse("catalog:index") + "?q=agent+loop+planning+memory").content.decode()
    assert 'href="/workflows/learn-agentic-ai/"' in page


def test_the_skills_index_does_not_grow_in_queries_with_skills(alice_client, library, count_queries, tmp_path):
    few, _ = count_queries(alice_client, reverse("catalog:skills"))
    for n in range(5):
        skill(tmp_path / "more", f"extra-{n}")
    import_skills(tmp_path / "more")
    many, page = count_queries(alice_client, reverse("catalog:skills"))
    assert many == few and "extra-4" in page


def test_the_command_line_refuses_a_template_skill_too(library):
    from io import StringIO

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"skill: Choose one of the imported skills\."):
        call_command("runworkflow", "skill-quiz", "--input", "skill=template", stdout=StringIO(), stderr=StringIO())


def test_a_workflow_page_shows_the_licence_of_its_skills(alice_client, catalog):
    page = alice_client.get("/workflows/learn-agentic-ai/").content.decode()
    assert '<span class="meta">Licence: MIT</span>' in page
