"""Operators import a skill library from the browser: a zip, extracted safely, with the import report."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog import skill_archive
from catalog.models import Skill

from .test_skills_import import skill

pytestmark = pytest.mark.django_db
URL = "/admin/catalog/skill/import/"
SKILL_MD = "---\nname: {0}\ndescription: Does {0}.\n---\n# Body\n"


@pytest.fixture(autouse=True)
def _own_data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


def make_zip(*entries: tuple[str, bytes] | zipfile.ZipInfo, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                archive.writestr(entry, (extra or {}).get(entry.filename, b""))
            else:
                archive.writestr(entry[0], entry[1])
    return buffer.getvalue()


def upload(client, data: bytes, name: str = "my-library.zip"):
    return client.post(URL, {"archive": SimpleUploadedFile(name, data, content_type="application/zip")})


def libraries() -> list[Path]:
    root = Path(settings.DATA_DIR) / "skill-libraries"
    return sorted(root.iterdir()) if root.is_dir() else []


def test_an_operator_uploads_a_zip_and_sees_the_report(admin_client):
    data = make_zip(
        ("lib/alpha/SKILL.md", SKILL_MD.format("alpha").encode()),
        ("lib/alpha/forms.md", b"# Forms"),
        ("lib/beta/SKILL.md", b"no front matter"),
    )
    response = upload(admin_client, data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "2 skills found: 1 imported, 0 updated, 0 unchanged, 1 skipped." in page
    assert "imported   alpha" in page and "skipped    beta: no YAML front matter" in page
    alpha = Skill.objects.get(name="alpha")
    assert alpha.library == "my-library" and alpha.latest.references == {"forms.md": "# Forms"}
    assert Path(alpha.source).is_relative_to(Path(settings.DATA_DIR) / "skill-libraries")


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (("../../escape.md", b"x"), "'../../escape.md' climbs out of the archive with '..'"),
        (("lib/../../escape.md", b"x"), "climbs out of the archive"),
        (("/etc/escape.md", b"x"), "'/etc/escape.md' is not a relative path inside the archive"),
        (("C:/escape.md", b"x"), "is not a relative path"),
        (("lib\\..\\escape.md", b"x"), "is not a relative path"),
        (_symlink("lib/alpha/references"), "'lib/alpha/references' is a symlink"),
    ],
)
def test_a_zip_that_would_escape_or_holds_a_symlink_is_refused_whole(admin_client, tmp_path, entry, reason):
    data = make_zip(
        ("lib/alpha/SKILL.md", SKILL_MD.format("alpha").encode()), entry, extra={"lib/alpha/references": b"/etc"}
    )
    response = upload(admin_client, data)
    assert response.status_code == 422
    assert reason in response.content.decode().replace("&#x27;", "'")
    assert not Skill.objects.exists() and libraries() == []
    assert not (Path(settings.DATA_DIR) / "escape.md").exists() and not Path("/etc/escape.md").exists()


def test_a_zip_bomb_stops_at_the_size_limit(admin_client, monkeypatch):
    monkeypatch.setattr(skill_archive, "MAX_TOTAL_BYTES", 1024 * 1024)
    data = make_zip(("lib/a/SKILL.md", SKILL_MD.format("a").encode()), ("lib/a/big.txt", b"0" * (3 * 1024 * 1024)))
    assert len(data) < 20 * 1024  # small on the wire, large unpacked
    response = upload(admin_client, data)
    assert "the archive is larger than 1 MiB unpacked" in response.content.decode()
    assert libraries() == []


def test_too_many_files_are_refused(admin_client, monkeypatch):
    monkeypatch.setattr(skill_archive, "MAX_ENTRIES", 3)
    data = make_zip(*[(f"lib/s{n}/SKILL.md", SKILL_MD.format(f"s{n}").encode()) for n in range(4)])
    assert "4 entries; at most 3 are accepted" in upload(admin_client, data).content.decode()
    assert not Skill.objects.exists()


def test_what_is_not_a_zip_is_said_plainly(admin_client):
    response = upload(admin_client, b"this is not a zip")
    assert response.status_code == 422 and "The zip was refused: not a zip file" in response.content.decode()


def test_a_server_folder_must_be_one_the_settings_allow(admin_client, tmp_path, settings):
    skill(tmp_path / "allowed", "gamma")
    skill(tmp_path / "secret", "delta")
    settings.SKILL_IMPORT_DIRS = [tmp_path / "allowed"]
    refused = admin_client.post(URL, {"folder": str(tmp_path / "secret")})
    assert refused.status_code == 422 and not Skill.objects.exists()
    page = admin_client.post(URL, {"folder": str(tmp_path / "allowed")}).content.decode()
    assert "1 skills found: 1 imported" in page and Skill.objects.get().name == "gamma"


def test_a_student_cannot_reach_the_import(alice_client):
    response = alice_client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_skill_list_links_to_the_import(admin_client):
    assert f'href="{URL}"' in admin_client.get(reverse("admin:catalog_skill_changelist")).content.decode()


def _encrypted() -> bytes:
    """Bit 0 of the flags ("encrypted") set in the local and the central header: zipfile wants a password."""
    data = bytearray(make_zip(("lib/alpha/SKILL.md", SKILL_MD.format("alpha").encode())))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x1
    return bytes(data)


def _bad_crc() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("lib/alpha/SKILL.md", SKILL_MD.format("alpha"))
    return buffer.getvalue().replace(b"Does alpha", b"Does alphA", 1)  # the stored bytes no longer match the CRC


def _bad_utf8_name() -> bytes:
    data = make_zip(("lib/é/SKILL.md", SKILL_MD.format("alpha").encode()))  # a UTF-8 name: flag bit 11 set
    return data.replace("é".encode(), b"\xff\xfe")  # same length, no longer UTF-8, flag still set


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_encrypted(), "'lib/alpha/SKILL.md' is encrypted; encrypted archives are refused"),
        (_bad_crc(), "the archive is damaged (Bad CRC-32 for file 'lib/alpha/SKILL.md')"),
        (_bad_utf8_name(), "an entry is marked as UTF-8 but its name is not valid UTF-8"),
        (make_zip((f"lib/{'n' * 300}.md", b"x")), "is a name longer than 255 bytes"),
        (make_zip(("lib/alpha", b"a file"), ("lib/alpha/SKILL.md", b"x")), "'lib/alpha' is both a file and a folder"),
        (make_zip(("lib/alpha/SKILL.md", b"x"), ("lib/alpha", b"a file")), "'lib/alpha' is both a file and a folder"),
    ],
    ids=["encrypted", "bad-crc", "bad-utf8-flag", "300-char-name", "file-then-folder", "folder-then-file"],
)
def test_a_malformed_zip_is_refused_with_its_reason_not_a_server_error(admin_client, data, reason):
    response = upload(admin_client, data)
    assert response.status_code == 422
    assert reason in response.content.decode().replace("&#x27;", "'")
    assert not Skill.objects.exists() and libraries() == []


def test_the_size_limit_counts_all_entries_together_not_each_file(admin_client, monkeypatch):
    """C1: three files each under every per-file limit, together over the total."""
    monkeypatch.setattr(skill_archive, "MAX_TOTAL_BYTES", 1024 * 1024)
    parts = [(f"lib/s{n}/big.txt", b"0" * (400 * 1024)) for n in range(3)]
    data = make_zip(("lib/s0/SKILL.md", SKILL_MD.format("s0").encode()), *parts)
    response = upload(admin_client, data)
    assert response.status_code == 422
    assert "the archive is larger than 1 MiB unpacked" in response.content.decode()
    assert libraries() == []
