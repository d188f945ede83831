"""Importing skill libraries in every layout the Agent Skills format allows, through the real import_skills.

Runs on SQLite by default and on PostgreSQL with DATABASE_URL=postgres://… (NUL bytes are what PostgreSQL
refuses: they must skip the file, never abort the import).
"""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from catalog.models import Skill
from catalog.services import import_skills
from catalog.skills import MAX_RESOURCE_BYTES, PART_CHARS, PROMPT_BODY_CHARS, parse_skill

pytestmark = pytest.mark.django_db


def skill(root: Path, folder: str, front: str = "", body: str = "# Body\n", **files: str | bytes) -> Path:
    """A skill folder: SKILL.md (name = folder unless `front` says otherwise) and any files by relative path."""
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    front = front or f"name: {folder}\ndescription: Does {folder} things."
    (path / "SKILL.md").write_text(f"---\n{front}\n---\n{body}")
    for rel, content in files.items():
        target = path / rel.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return path


def latest(name: str):
    return Skill.objects.get(name=name).latest


def test_files_beside_skill_md_and_in_any_folder_are_resources(tmp_path):
    skill(
        tmp_path,
        "pdf-forms",
        body="Fill forms as [forms.md](forms.md) says; API in [the reference](./reference/api/calls.md#auth).\n",
        **{
            "forms.md": "# Forms\nUse field ids.",
            "reference.md": "# Reference",
            "reference__api__calls.md": "# Calls\n## Auth\nA token.",
            "examples__letter.txt": "Dear reader",
            "themes__dark.json": '{"bg": "#000"}',
            "data__table.csv": "a,b\n1,2",
            "scripts__fill.py": "print('never run')",
            "assets__logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        },
    )
    report = import_skills(tmp_path)
    assert report.imported == ["pdf-forms"] and not report.skipped
    version = latest("pdf-forms")
    assert sorted(version.references) == [
        "data/table.csv",
        "examples/letter.txt",
        "forms.md",
        "reference.md",
        "reference/api/calls.md",
        "scripts/fill.py",
        "themes/dark.json",
    ]
    assert version.assets == [{"path": "assets/logo.png", "size": 10, "type": "image/png"}]
    assert not any("links to" in w for w in version.warnings)  # both links resolve


def test_a_link_to_a_missing_file_is_a_warning_not_a_silence(tmp_path):
    skill(tmp_path, "links", body="See [forms](forms.md) and [code](`not a link`).\n```\n[x](in-code.md)\n```\n")
    report = import_skills(tmp_path)
    assert report.warnings == [
        f"{tmp_path / 'links' / 'SKILL.md'}: SKILL.md links to forms.md, which is not in the skill"
    ]


def test_a_60000_character_body_is_split_and_nothing_is_lost(tmp_path):
    sections = [f"## Section {n}\n" + f"Sentence {n} of the long skill. " * 40 + "\n" for n in range(50)]
    body = "\n".join(sections)
    assert len(body) > 60000
    skill(tmp_path, "long-skill", body=body)
    import_skills(tmp_path)
    version = latest("long-skill")
    assert len(version.parts) >= 10 and len(version.parts[0]) <= PROMPT_BODY_CHARS
    assert all(len(p) <= PART_CHARS for p in version.parts[1:])
    assert " ".join(" ".join(version.parts).split()) == " ".join(body.split())  # only whitespace differs
    assert all(p.startswith("## Section") for p in version.parts)  # cut at headings
    prompt = version.prompt_body
    assert prompt.startswith(version.parts[0]) and len(prompt) < PROMPT_BODY_CHARS + 300
    assert f"parts 2-{len(version.parts)}" in prompt and "'SKILL.md#part-2'" in prompt
    assert version.resources["SKILL.md#part-2"] == version.parts[1]


@pytest.mark.parametrize(
    ("front", "warning"),
    [
        ("name: Bad_Name\ndescription: d", "name 'Bad_Name' breaks the specification"),
        ("name: -bad\ndescription: d", "name '-bad' breaks the specification"),
        ("name: bad-\ndescription: d", "name 'bad-' breaks the specification"),
        ("name: bad--name\ndescription: d", "name 'bad--name' breaks the specification"),
        ("name: " + "a" * 65 + "\ndescription: d", "name is 65 characters; the specification allows 1-64"),
        ("name: other\ndescription: d", "name 'other' does not match its folder 'broken'"),
        ("description: d", "no name in the front matter; using the folder name"),
        ("name: broken\ndescription: " + "d" * 1025, "description is 1025 characters; the specification allows 1024"),
        ("name: broken\ndescription: d\ncompatibility: " + "c" * 501, "compatibility is 501 characters"),
        ("name: broken\ndescription: d\nmetadata:\n  version: 1.0", "metadata should map names to text values"),
        ("name: broken\ndescription: d\nmetadata: [a, b]", "metadata should map names to text values"),
        ("name: broken\ndescription: d\nallowed-tools: [Read, Bash]", "allowed-tools should be one line"),
        ("name: broken\ndescription: d\nlicense: [MIT]", "license should be a licence name"),
        ("name: broken\ndescription: d\nauthor: me", "fields not in the specification (kept as metadata): author"),
    ],
)
def test_a_broken_rule_of_the_spec_is_imported_with_a_warning(tmp_path, front, warning):
    skill(tmp_path, "broken", front=front)
    report = import_skills(tmp_path)
    assert len(report.imported) == 1 and not report.skipped
    assert any(warning in w for w in report.warnings), report.warnings
    assert any(warning in w for w in Skill.objects.get().latest.warnings)


def test_a_skill_that_follows_the_spec_has_no_warning(tmp_path):
    front = (
        "name: clean-skill\ndescription: Clean.\nlicense: Apache-2.0\ncompatibility: Needs Python 3.12\n"
        "metadata:\n  author: me\n  version: '1.0'\nallowed-tools: Read Grep"
    )
    skill(tmp_path, "clean-skill", front=front)
    assert import_skills(tmp_path).warnings == []
    assert Skill.objects.get().license == "Apache-2.0"


@pytest.mark.parametrize(
    ("front", "reason"),
    [
        ("name: x", "no description in the front matter"),
        ("name: [unclosed", "front matter is not valid YAML"),
        ('name: x\ndescription: "nul \\0 inside"', "the front matter holds a NUL or an invalid character"),
        ('name: x\ndescription: "lone \\ud800 surrogate"', "the front matter holds a NUL or an invalid character"),
    ],
)
def test_an_unusable_skill_is_skipped_with_its_reason_and_the_others_import(tmp_path, front, reason):
    skill(tmp_path, "good")
    skill(tmp_path, "unusable", front=front)
    out = StringIO()
    call_command("import_skills", str(tmp_path), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "imported   good"
    assert lines[1].startswith(f"skipped    unusable: {reason}")
    assert lines[-1] == "2 skills found: 1 imported, 0 updated, 0 unchanged, 1 skipped."


def test_a_file_of_a_whole_megabyte_is_readable_since_reads_are_paged(tmp_path):
    skill(tmp_path, "paged", **{"references__long.md": "y" * (1024 * 1024)})
    import_skills(tmp_path)
    assert len(latest("paged").references["references/long.md"]) == 1024 * 1024


def test_too_large_files_are_listed_with_a_warning_not_read(tmp_path):
    skill(tmp_path, "big", **{"references__huge.md": "x" * (MAX_RESOURCE_BYTES + 1)})
    report = import_skills(tmp_path)
    assert any("references/huge.md not readable: 4096 KiB is past the per-file limit" in w for w in report.warnings)
    version = latest("big")
    assert "references/huge.md" not in version.references
    assert version.assets[0]["note"] == "too large to read"


def test_nul_bytes_skip_that_file_with_a_warning_and_never_abort_the_import(tmp_path):
    skill(tmp_path, "alpha", **{"notes.md": "# Fine", "bad.md": b"# Bad\x00text", "weird.txt": b"\xff\xfe\x00"})
    skill(tmp_path, "beta", **{"ok.md": "# Also fine"})
    (tmp_path / "gamma").mkdir()
    (tmp_path / "gamma" / "SKILL.md").write_bytes(b"---\nname: gamma\ndescription: d\n---\nbody \x00 here")
    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "SKILL.md").write_bytes(b"---\nname: delta\ndescription: caf\xe9\n---\nbody")
    out = StringIO()
    call_command("import_skills", str(tmp_path), "--verbose-warnings", stdout=out)
    text = out.getvalue()
    assert "skipped    gamma: it contains NUL bytes" in text
    assert "skipped    delta: not valid UTF-8 text" in text
    assert "bad.md not readable: it contains NUL bytes" in text
    assert "weird.txt not readable: it contains NUL bytes" in text
    assert text.endswith("4 skills found: 2 imported, 0 updated, 0 unchanged, 2 skipped.\n")
    assert latest("alpha").references == {"notes.md": "# Fine"}
    assert latest("beta").references == {"ok.md": "# Also fine"}


@pytest.mark.parametrize(
    ("folder", "description", "flagged"),
    [
        ("starter", "Replace with a description of what your skill does.", True),
        ("example-skill", "An example.", True),
        ("pdf-forms", "Fill in PDF forms; replaces manual typing.", False),
    ],
)
def test_a_template_is_known_by_its_folder_or_its_placeholder_text(tmp_path, folder, description, flagged):
    skill(tmp_path, folder, front=f"name: {folder}\ndescription: {description}")
    import_skills(tmp_path)
    assert Skill.objects.get().is_template is flagged


def test_a_template_skill_is_flagged_and_kept_from_students(tmp_path):
    skill(tmp_path, "template", front="name: template-skill\ndescription: Replace with a description of the skill.")
    skill(tmp_path, "real-one")
    report = import_skills(tmp_path)
    assert sorted(report.imported) == ["real-one", "template-skill"]
    assert any("looks like a template or example skill" in w for w in report.warnings)
    assert Skill.objects.get(name="template-skill").is_template
    assert not Skill.objects.get(name="real-one").is_template


def test_a_bundled_licence_file_is_the_licence_when_none_is_declared(tmp_path):
    skill(tmp_path, "licensed", **{"LICENSE.txt": "All rights reserved."})
    skill(tmp_path, "proprietary", front="name: proprietary\ndescription: d\nlicense: Proprietary. LICENSE.txt")
    import_skills(tmp_path)
    assert Skill.objects.get(name="licensed").license == "See LICENSE.txt (bundled)"
    assert Skill.objects.get(name="proprietary").license == "Proprietary. LICENSE.txt"


# -- issue 12, item 3: imported files stay inside their skill --------------------------------------------


@pytest.fixture
def secret(tmp_path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.md").write_text("root:SECRET-ON-THE-SERVER")
    (outside / "SKILL.md").write_text("---\nname: outside\ndescription: SECRET-ON-THE-SERVER\n---\nSECRET")
    return outside


def test_a_symlinked_folder_in_a_skill_is_skipped_with_a_warning(tmp_path, secret):
    folder = skill(tmp_path / "lib", "linked", **{"references__real.md": "# Real"})
    os.symlink(secret, folder / "references" / "more")
    os.symlink(secret, folder / "docs")
    report = import_skills(tmp_path / "lib")
    version = latest("linked")
    assert version.references == {"references/real.md": "# Real"}
    assert "SECRET" not in str(version.references) + str(version.assets) + version.body
    assert sorted(w.split(": ", 1)[1] for w in report.warnings) == [
        "folder docs skipped: it is a symlink",
        "folder references/more skipped: it is a symlink",
    ]


def test_a_symlinked_file_in_a_skill_is_skipped_with_a_warning(tmp_path, secret):
    folder = skill(tmp_path / "lib", "linked", body="See [forms](forms.md).")
    os.symlink(secret / "passwd.md", folder / "forms.md")
    report = import_skills(tmp_path / "lib")
    assert f"{folder / 'SKILL.md'}: forms.md skipped: it is a symlink" in report.warnings
    assert "SECRET" not in str(latest("linked").references)


def test_a_symlinked_skill_folder_or_skill_md_is_refused_by_name(tmp_path, secret):
    lib = tmp_path / "lib"
    skill(lib, "fine")
    os.symlink(secret, lib / "elsewhere")
    (lib / "md-link").mkdir()
    os.symlink(secret / "SKILL.md", lib / "md-link" / "SKILL.md")
    report = import_skills(lib)
    assert report.imported == ["fine"]
    assert sorted(report.skipped) == [
        f"{lib / 'elsewhere' / 'SKILL.md'}: the skill folder or its SKILL.md is a symlink",
        f"{lib / 'md-link' / 'SKILL.md'}: the skill folder or its SKILL.md is a symlink",
    ]
    assert not Skill.objects.filter(description__contains="SECRET").exists()


def test_a_file_swapped_for_a_symlink_after_the_walk_is_not_read(tmp_path, secret, monkeypatch):
    """The read itself refuses a symlink (O_NOFOLLOW) and checks the real path, whatever the walk saw."""
    from catalog import skills as reader

    folder = skill(tmp_path / "lib", "racy", **{"notes.md": "# Notes"})
    walk = reader._walk

    def walk_then_swap(root: Path, warnings: list[str]) -> list[Path]:
        files = walk(root, warnings)
        (folder / "notes.md").unlink()
        os.symlink(secret / "passwd.md", folder / "notes.md")
        return files

    monkeypatch.setattr(reader, "_walk", walk_then_swap)
    parsed = parse_skill(folder)
    assert parsed.references == {}
    assert parsed.warnings[-1].startswith("notes.md skipped: ")


def test_dotdot_names_stay_plain_file_names_inside_the_skill(tmp_path):
    skill(tmp_path, "dots", **{"..notes.md": "# Dots", "a..b.md": "# AB"})
    import_skills(tmp_path)
    assert sorted(latest("dots").references) == ["..notes.md", "a..b.md"]


def test_the_command_prints_one_line_per_skill_for_each_outcome(tmp_path):
    skill(tmp_path, "alpha")
    skill(tmp_path, "beta")
    call_command("import_skills", str(tmp_path), stdout=StringIO())
    skill(tmp_path, "alpha", body="# Changed\n")
    (tmp_path / "huge").mkdir()
    (tmp_path / "huge" / "SKILL.md").write_text("---\nname: huge\ndescription: d\n---\n" + "x" * 600_000)
    out = StringIO()
    call_command("import_skills", str(tmp_path), stdout=out)
    assert out.getvalue().splitlines() == [
        "updated    alpha",
        "unchanged  beta",
        "skipped    huge: larger than 512 KiB",
        "3 skills found: 0 imported, 1 updated, 1 unchanged, 1 skipped.",
    ]
