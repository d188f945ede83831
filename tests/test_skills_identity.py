"""Skills are identified by library and name: a second library's `pdf` is a second skill, kept visibly,
never a silent replacement; names are Unicode as the Agent Skills specification allows; an unusable name
is refused with its reason; and the skills page never fails on any name that was imported."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from catalog.inputs import InputError
from catalog.models import Skill
from catalog.services import import_skills
from runs import services
from runs.models import Mode

from .test_skills_import import skill

pytestmark = pytest.mark.django_db


def library(root: Path, name: str, *folders: tuple[str, str, str]) -> Path:
    """A library folder `name` holding skills (folder, front matter, body)."""
    for folder, front, body in folders:
        skill(root / name, folder, front, body)
    return root / name


def pdf(root: Path, lib: str, body: str) -> Path:
    return library(root, lib, ("pdf", "name: pdf\ndescription: Works with PDF files.", body))


def test_a_second_library_with_the_same_name_keeps_both_and_says_so(tmp_path):
    import_skills(pdf(tmp_path, "school", "# School PDF\nThe school's own text.\n"))
    report = import_skills(pdf(tmp_path, "edge", "# Edge PDF\nSomething else entirely.\n"))
    assert report.imported == ["pdf"] and report.updated == []
    assert "both are kept, choose this one as edge/pdf" in report.lines[0]
    school, edge = Skill.objects.get(library="school", name="pdf"), Skill.objects.get(library="edge", name="pdf")
    assert "The school's own text." in school.latest.body and "Something else" in edge.latest.body
    again = import_skills(tmp_path / "school")  # re-importing the first switches nothing back or forth
    assert again.unchanged == ["pdf"] and Skill.objects.filter(name="pdf").count() == 2
    school.refresh_from_db()
    assert "The school's own text." in school.latest.body


def test_a_shared_plain_name_must_be_chosen_in_full_and_a_unique_one_still_works(tmp_path, catalog, alice):
    from catalog.models import Workflow

    version = Workflow.objects.get(slug="skill-code-review").current_version
    import_skills(pdf(tmp_path, "school", "# School PDF\n"))

    def start(choice: str):
        return services.start_run(
            workflow_version=version, user=alice, inputs={"skill": choice}, mode=Mode.VALIDATE, queue=False
        )

    assert start("pdf").inputs["skill"] == "pdf"  # one library has it: the plain name works
    assert start("school/pdf").inputs["skill"] == "pdf"  # and the full reference too, written canonically
    import_skills(pdf(tmp_path, "edge", "# Edge PDF\n"))
    with pytest.raises(InputError) as refused:
        start("pdf")
    assert "skill" in refused.value.errors
    assert start("edge/pdf").inputs["skill"] == "edge/pdf"
    assert start("school/pdf").inputs["skill"] == "school/pdf"


# Enough of a skill for a code review the workflow's checks accept (its length), even from the offline model.
PDF_GUIDE = "".join(
    f"\n## {topic}\n{topic} matters when code reads or writes PDF files, so a reviewer checks it on every change "
    "that touches documents, pages, fonts or forms.\n"
    for topic in ("Opening files", "Page ranges", "Fonts", "Form fields", "Encryption", "Large documents")
)


def test_the_run_uses_the_library_it_named(tmp_path, catalog, alice):
    from catalog.models import Workflow
    from runs import pipeline

    version = Workflow.objects.get(slug="skill-code-review").current_version
    import_skills(pdf(tmp_path, "school", "# School PDF\nSCHOOL-MARKER\n" + PDF_GUIDE))
    import_skills(pdf(tmp_path, "edge", "# Edge PDF\nEDGE-MARKER\n" + PDF_GUIDE))
    run = services.start_run(workflow_version=version, user=alice, inputs={"skill": "edge/pdf"}, mode=Mode.TEST,
                             queue=False)  # fmt: skip
    pipeline.execute(run.pk)
    run.refresh_from_db()
    trace = run.artifacts.get(name="trace.json").file.open("rb").read().decode()
    edge, school = (Skill.objects.get(library=lib, name="pdf").latest.content_hash[:12] for lib in ("edge", "school"))
    assert run.status == "succeeded", run.reason
    assert edge in trace and school not in trace


@pytest.mark.parametrize(
    ("folder", "front", "stored"),
    [
        ("données-outils", "name: données-outils\ndescription: Outils de données.", "données-outils"),
        ("技能", "name: 技能\ndescription: 一个技能。", "技能"),
        ("Cafe", "name: Cafe\u0301-Menu\ndescription: Decomposed accent, capitals.", "café-menu"),  # NFKC, lower
        ("ﬁle-tools", "name: ﬁle-tools\ndescription: A ligature.", "file-tools"),  # NFKC folds the ligature
    ],
)
def test_unicode_names_import_as_the_specification_allows_and_their_pages_work(
    tmp_path, admin_client, alice_client, folder, front, stored
):
    report = import_skills(library(tmp_path, "intl", (folder, front, "# Body\n")))
    assert report.imported == [stored], report.lines
    found = Skill.objects.get(library="intl", name=stored)
    for client in (admin_client, alice_client):
        index = client.get(reverse("catalog:skills"))
        assert index.status_code == 200 and stored in index.content.decode()
        page = client.get(found.get_absolute_url())
        assert page.status_code == 200 and stored in page.content.decode()


@pytest.mark.parametrize(
    ("folder", "front", "reason"),
    [
        ("!!!", "name: '!!!'\ndescription: Punctuation only.", "the name '!!!' has no letters or digits"),
        ("___", "description: No name, and a folder name of underscores.", "the name '___' has no letters or digits"),
        ("long", f"name: {'a' * 121}\ndescription: Too long.", "at most 120 can name a skill"),
    ],
)
def test_an_unusable_name_is_refused_with_the_reason_and_the_skills_page_still_works(
    tmp_path, alice_client, folder, front, reason
):
    report = import_skills(library(tmp_path, "odd", (folder, front, "# Body\n"), ("fine", "", "# Body\n")))
    assert report.imported == ["fine"]
    assert any(reason in line for line in report.skipped), report.skipped
    assert not Skill.objects.exclude(name="fine").exists()
    assert alice_client.get(reverse("catalog:skills")).status_code == 200


def test_the_skills_page_links_each_of_two_same_named_skills_to_its_own_page(tmp_path, alice_client, catalog):
    import_skills(pdf(tmp_path, "school", "# School PDF\nSCHOOL-MARKER\n"))
    import_skills(pdf(tmp_path, "edge", "# Edge PDF\nEDGE-MARKER\n"))
    page = alice_client.get(reverse("catalog:skills")).content.decode()
    assert "/skills/school/pdf/" in page and "/skills/edge/pdf/" in page
    edge = alice_client.get("/skills/edge/pdf/").content.decode()
    assert "Library" in edge and "edge" in edge and "skill=edge/pdf" in edge.replace("%2F", "/")
