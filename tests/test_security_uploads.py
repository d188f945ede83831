"""Multipart bodies are refused before they are read: an anonymous or oversized upload never reaches the
temp folder. Driven through Django's real WSGI handler with a body generated as it is read, so the test
measures what the server read and the most the temp folder held while it did."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from .factories import UserFactory

pytestmark = pytest.mark.django_db
BOUNDARY = "----awp-upload-test"
MiB = 2**20


class MultipartBody(io.RawIOBase):
    """A multipart body with one file of `size` bytes, produced as it is read (never whole in memory).
    Counts the bytes read and samples the temp folder's size as reading goes."""

    def __init__(self, size: int, temp_dir: Path) -> None:
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="archive"; filename="big.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.size = size
        self.length = len(self.head) + size + len(self.tail)
        self.read_bytes = 0
        self.temp_dir = temp_dir
        self.most_on_disk = 0
        self._sampled_at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        left = self.length - self.read_bytes
        n = min(len(buffer), left)
        if n <= 0:
            return 0
        start = self.read_bytes
        chunk = bytearray(b"x" * n)
        for offset, part in ((0, self.head), (len(self.head) + self.size, self.tail)):
            for i in range(max(start, offset), min(start + n, offset + len(part))):
                chunk[i - start] = part[i - offset]
        buffer[:n] = chunk
        self.read_bytes += n
        if self.read_bytes - self._sampled_at >= MiB:
            self._sampled_at = self.read_bytes
            self.most_on_disk = max(self.most_on_disk, _size_of(self.temp_dir))
        return n


def _size_of(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())


def post_upload(path: str, body: MultipartBody, client: Client | None = None) -> int:
    """POST the body through Django's request handling (the test client's WSGI handler, CSRF enforced as in
    production), its input the generated stream."""
    client = client or Client(enforce_csrf_checks=True)
    # Any well-formed CSRF cookie: the CSRF check then reads the form (and its files) to find the token.
    client.cookies["csrftoken"] = "A" * 32
    stream = io.BufferedReader(body, buffer_size=64 * 1024)
    response = client.generic(
        "POST", path, b"-", content_type=f"multipart/form-data; boundary={BOUNDARY}",
        **{"wsgi.input": stream, "CONTENT_LENGTH": str(body.length)},
    )  # fmt: skip
    return response.status_code


def staff_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="olga", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def temp_dir(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    return tmp_path


def test_an_anonymous_multipart_post_to_the_login_page_is_refused_unread(temp_dir):
    body = MultipartBody(64 * MiB, temp_dir)
    assert post_upload("/login/", body) == 403
    assert body.read_bytes == 0 and body.most_on_disk == 0


def test_an_oversized_upload_from_a_logged_in_user_is_refused_unread(temp_dir, settings):
    settings.UPLOAD_MAX_BYTES = 8 * MiB
    body = MultipartBody(9 * MiB, temp_dir)
    assert post_upload("/admin/catalog/skill/import/", body, staff_client()) == 413
    assert body.read_bytes == 0 and body.most_on_disk == 0


def test_a_logged_in_upload_within_the_limit_is_read(temp_dir, settings):
    """The gate lets a real upload through: it is parsed (and spooled past FILE_UPLOAD_MAX_MEMORY_SIZE)."""
    settings.UPLOAD_MAX_BYTES = 8 * MiB
    body = MultipartBody(6 * MiB, temp_dir)
    status = post_upload("/admin/catalog/skill/import/", body, staff_client())
    assert status == 403  # no CSRF token in this body: refused by the CSRF check, after reading
    assert body.read_bytes == body.length and body.most_on_disk > 2 * MiB


def test_an_upload_without_a_declared_length_is_refused(client):
    client.force_login(UserFactory(username="olga"))
    response = client.generic(
        "POST", "/admin/catalog/skill/import/", b"--x--", content_type=f"multipart/form-data; boundary={BOUNDARY}",
        CONTENT_LENGTH="",
    )  # fmt: skip
    assert response.status_code == 411


def test_an_anonymous_multipart_api_request_gets_a_json_error(temp_dir):
    body = MultipartBody(2 * MiB, temp_dir)
    client = Client()
    response = client.generic(
        "POST", "/api/v1/runs", b"-", content_type=f"multipart/form-data; boundary={BOUNDARY}",
        **{"wsgi.input": io.BufferedReader(body), "CONTENT_LENGTH": str(body.length)},
    )  # fmt: skip
    assert response.status_code == 403 and response.json()["code"] == "login_required"
    assert body.read_bytes == 0


def test_a_small_anonymous_form_still_reaches_the_login_page(client, alice):
    """Browsers and scripts may post the login form as multipart: under 1 MiB it stays in memory."""
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})  # multipart by default
    assert response.status_code == 200
