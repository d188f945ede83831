from __future__ import annotations

import pytest
from django.conf import settings

from catalog.skills import SkillError, parse_skill


def make_skill(tmp_path, text: bytes | str, folder: str = "my-skill"):
    root = tmp_path / folder
    root.mkdir()
    (root / "SKILL.md").write_bytes(text.encode() if isinstance(text, str) else text)
    return root


def test_the_project_skill_has_name_description_and_references():
    skill = parse_skill(settings.SKILLS_DIR / "learn-agentic-ai")
    assert skill.name == "learn-agentic-ai"
    assert skill.description
    assert "references/agent-loop.md" in skill.references
    assert skill.warnings == []


def test_it_reads_a_bom_and_crlf_and_warns_when_the_name_differs_from_the_folder(tmp_path):
    text = "\ufeff---\r\nname: Other Name\r\ndescription: Does things.\r\nextra: 1\r\n---\r\n# Body\r\n"
    skill = parse_skill(make_skill(tmp_path, text))
    assert skill.name == "other-name"
    assert skill.body == "# Body"
    assert skill.metadata == {"extra": 1}
    assert any("does not match its folder" in w for w in skill.warnings)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# No front matter\n", "no YAML front matter"),
        ("---\nname: x\n---\nbody", "no description"),
        ("---\nname: [unclosed\n---\nbody", "not valid YAML"),
    ],
)
def test_it_refuses_an_unusable_skill_naming_the_file(tmp_path, text, reason):
    folder = make_skill(tmp_path, text)
    with pytest.raises(SkillError) as err:
        parse_skill(folder)
    assert reason in str(err.value)
    assert str(folder / "SKILL.md") in str(err.value)


def test_it_reads_scripts_as_text_and_never_runs_them(tmp_path):
    folder = make_skill(tmp_path, "---\nname: my-skill\ndescription: d\n---\nbody")
    (folder / "scripts").mkdir()
    (folder / "scripts" / "run.py").write_text("raise SystemExit('ran')")
    (folder / "references").mkdir()
    (folder / "references" / "a.md").write_text("# A")
    assert parse_skill(folder).references == {"references/a.md": "# A", "scripts/run.py": "raise SystemExit('ran')"}
