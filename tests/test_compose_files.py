"""The Dockerfile and docker-compose.yml, read statically: what can be checked without building anything.

The real proof is `make compose-test` (scripts/compose_test/), which builds the image and runs the stack.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from scripts import healthcheck

ROOT = Path(settings.BASE_DIR)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_base_image_is_a_build_argument_defaulting_to_the_official_python_image():
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert [args for word, args in steps if word == "FROM"] == ["${BASE_IMAGE}"]


# One pip install of one lock, then pip check by the same interpreter (`--python` names the target venv).
LOCK_INSTALL = re.compile(
    r"pip(?P<python>(?: --python \S+)?) install (?P<options>(?:--[\w-]+ )*)-r (?P<lock>requirements/\S+) "
    r"&& pip(?P=python) check"
)


def test_the_image_installs_the_lock_alone_with_hashes_and_no_deps_then_checks_it():
    steps = instructions()
    installs = [args for word, args in steps if word == "RUN" and re.search(r"\bpip\b.* install\b", args)]
    found = [LOCK_INSTALL.search(args) for args in installs]
    assert all(found), installs  # every pip install is of one lock, followed by pip check
    assert all(len(re.findall(r"\binstall\b", args)) == 1 for args in installs), installs  # nothing else
    # The platform's lock into the image's venv (first on PATH), the sandbox's own lock into its own venv.
    assert [(m["lock"], m["python"]) for m in found] == [
        ("requirements/base.txt", ""),
        ("requirements/sandbox.txt", " --python /opt/sandbox-venv/bin/python"),
    ]
    for match in found:
        assert set(match["options"].split()) - {"--no-cache-dir"} == {"--require-hashes", "--no-deps"}, match[0]
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "VIRTUAL_ENV=/opt/venv" in env and "SANDBOX_PYTHON=/opt/sandbox-venv/bin/python" in env
    copied_before = [args for word, args in steps[: steps.index(("RUN", installs[-1]))] if word == "COPY"]
    # Code changes keep the pip layers: only the locks are copied before them.
    assert copied_before == [
        "requirements/base.txt requirements/base.txt",
        "requirements/sandbox.txt requirements/sandbox.txt",
    ]


def test_the_image_runs_as_a_non_root_user_and_has_a_health_check():
    steps = instructions()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = [args for word, args in steps if word == "HEALTHCHECK"]
    assert len(health) == 1 and '"/app/scripts/healthcheck.py"' in health[0]


def test_secrets_and_data_live_on_the_data_volume_and_sqlite_is_the_default():
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for word, args in instructions() if word == "ENV")))
    assert env["DATA_DIR"] == "/data" and env["ENV_FILE"] == "/data/.env"
    services = compose()["services"]
    for name in ("web", "worker"):
        assert "data:/data" in services[name]["volumes"]
        assert "profiles" not in services[name]
        assert services[name]["environment"]["DATABASE_URL"] == "${DATABASE_URL:-sqlite:////data/db.sqlite3}"


def test_postgresql_comes_with_the_postgres_profile_only():
    db = compose()["services"]["db"]
    assert db["profiles"] == ["postgres"]
    assert db["image"].startswith("${POSTGRES_IMAGE:-postgres:")
    assert "pgdata:/var/lib/postgresql/data" in db["volumes"]
    assert set(compose()["volumes"]) == {"data", "pgdata"}


def test_the_web_port_is_published_on_loopback_only():
    assert compose()["services"]["web"]["ports"] == ["127.0.0.1:${WEB_PORT:-8000}:8000"]
    assert "ports" not in compose()["services"]["worker"]


def test_the_build_context_leaves_out_local_secrets_data_and_the_venv():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "data", ".venv", ".git"} <= set(ignored)


def test_the_health_check_asks_for_the_first_plain_allowed_host(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", ".example.org, platform.example.org,localhost")
    assert healthcheck.host() == "platform.example.org"
    monkeypatch.setenv("ALLOWED_HOSTS", "")
    assert healthcheck.host() == "127.0.0.1"


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (204, 1), (400, 1), (None, 1)])
def test_the_health_check_passes_only_when_the_login_page_answers_200(monkeypatch, status, exit_code):
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.path} {self.headers['Host']}")
            self.send_response(status or 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    if status is None:  # nothing listens
        server.shutdown()
        server.server_close()
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("ALLOWED_HOSTS", "platform.example.org")
    try:
        assert healthcheck.main() == exit_code
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ([] if status is None else ["/login/ platform.example.org"])
