"""Accounts, roles, headers, CSRF, sizes, throttling and production settings."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from runs.models import Run
from runs.rendering import markdown_to_html
from settings_app.roles import assign_role

from .factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def test_check_deploy_is_clean_under_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "HTTPS": "true",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ENV_FILE": os.devnull,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_login_is_throttled_after_repeated_failures(alice):
    client = Client()
    statuses = [client.post(reverse("login"), {"username": "alice", "password": "wrong"}).status_code for _ in range(5)]
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    locked = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session


def test_a_good_login_sets_safe_session_cookies(alice):
    client = Client()
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_logout_is_by_post_only(alice_client):
    assert alice_client.get(reverse("logout")).status_code == 405
    assert alice_client.post(reverse("logout")).status_code == 302
    assert alice_client.get(reverse("catalog:index")).status_code == 302


def test_passwords_are_checked_by_django_validators(alice):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    for weak in ("password", "12345678", "alice"):
        with pytest.raises(ValidationError):
            validate_password(weak, alice)


def test_every_page_sends_the_security_headers_and_no_inline_script(alice_client, catalog):
    for url in (
        reverse("login"),
        reverse("catalog:index"),
        reverse("catalog:detail", args=[catalog.slug]),
        reverse("runs:history"),
    ):
        response = alice_client.get(url)
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {url}"
        assert not re.search(r"<[^>]+\son[a-z]+=", html), f"an event handler attribute on {url}"
        assert "cdn" not in html.lower()


def test_a_post_without_a_csrf_token_is_refused_and_creates_nothing(alice, catalog):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        reverse("catalog:detail", args=[catalog.slug]), {"topic": "x", "level": "beginner", "mode": "test"}
    )
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_an_oversized_body_is_refused_and_creates_nothing(alice_client, catalog):
    response = alice_client.post(
        reverse("catalog:detail", args=[catalog.slug]),
        {"topic": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10), "mode": "test"},
    )
    assert response.status_code == 400
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "evil",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=//evil.example></iframe>",
    ],
)
def test_notes_are_sanitized_whatever_the_model_wrote(evil):
    html = markdown_to_html(f"# Notes\n\n{evil}\n\n```python\nprint('ok')\n```")
    tags = re.findall(r"<([a-z0-9]+)([^>]*)>", html)
    assert {name for name, _ in tags} <= {"h1", "p", "a", "pre", "code", "div", "span"}
    assert not any(re.search(r"\son[a-z]+=|javascript:", attrs) for _, attrs in tags), tags
    assert '<span class="nb">print</span>' in html  # code is still highlighted


def test_roles_give_operators_everyones_runs_and_students_their_own(client, catalog):
    student, operator = UserFactory(username="stu"), UserFactory(username="opa")
    assign_role(student, "Student")
    assign_role(operator, "Operator")
    RunFactory(user=student, workflow_version=catalog.latest_version)
    RunFactory(user=UserFactory(username="other"), workflow_version=catalog.latest_version)
    client.force_login(operator)
    assert client.get(reverse("runs:history")).content.decode().count("Learn Agentic AI</a>") == 2
    assert client.get(reverse("settings:providers")).status_code == 200
    client.force_login(student)
    assert client.get(reverse("runs:history")).content.decode().count("Learn Agentic AI</a>") == 1
    assert client.get(reverse("settings:providers")).status_code == 403
    assert client.get("/admin/").status_code == 302  # not staff


def test_assign_role_from_the_command_line():
    out = StringIO()
    call_command("assign_role", "newop", "Operator", "--create", stdout=out)
    user = get_user_model().objects.get(username="newop")
    assert user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert user.groups.get().name == "Operator"
    assert "newop is now Operator" in out.getvalue()


def test_assign_role_refuses_an_unknown_user_without_create(alice):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"No user 'nobody'.*--create"):
        call_command("assign_role", "nobody", "Student")
    assert not get_user_model().objects.filter(username="nobody").exists()  # a typo makes no account
    call_command("assign_role", "alice", "Student", stdout=StringIO())  # a known user needs no flag
    assert alice.groups.get().name == "Student"


def test_user_input_is_data_never_a_template(alice, catalog):
    from runs import pipeline, services

    run = services.start_run(
        workflow_version=catalog.latest_version,
        user=alice,
        inputs={"topic": "{{ 7*7 }} {% if 1 %}x{% endif %}"},
        mode="test",
        queue=False,
    )
    pipeline.execute(run.pk)
    with run.artifacts.get(name="notes.md").file.open("rb") as handle:
        notes = handle.read().decode()
    assert notes.startswith("# Learn Agentic AI: {{ 7*7 }} {% if 1 %}x{% endif %}")
    assert "49" not in notes.splitlines()[0]


def test_error_pages_are_in_plain_words_and_the_site_style(alice_client, settings, monkeypatch):
    from catalog import views

    settings.DEBUG = False
    page = alice_client.get("/no-such-page/")
    assert page.status_code == 404 and b"There is nothing here" in page.content and b"site-header" in page.content
    monkeypatch.setattr(views, "enabled_workflows", lambda **kw: 1 / 0)
    alice_client.raise_request_exception = False
    broken = alice_client.get(reverse("catalog:index"))
    assert broken.status_code == 500
    assert b"Something went wrong" in broken.content and b"Traceback" not in broken.content
