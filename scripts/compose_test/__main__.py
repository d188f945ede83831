"""`make compose-test`: the Compose launch for real, with podman, on both profiles (SQLite, PostgreSQL).

Builds the images (images.py), starts docker-compose.yml with podman-compose, then, through HTTP only, does
what a new operator does: reads the admin password from the web container's log, logs in, runs
learn-agentic-ai (Validate, then Test) on the offline model, downloads the zip and saves a provider key. It
redeploys the stack (containers removed and created again, volumes kept) and checks the run, the account and
the key are still there and the key still decrypts (the provider is called with it). Each step is printed;
the first failure stops everything with exit 1, after the stack is removed.

    python -m scripts.compose_test [--profile sqlite|postgres|all]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import socket
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.support.fake_llm import FakeLLM
from tests.support.web import csrf_token, login, submit

from . import images
from .stack import Stack

WORKFLOW = "learn-agentic-ai"
INPUTS = {"topic": "Agents", "level": "beginner", "session_minutes": "20"}
PASSWORD = re.compile(r"Created the admin account 'admin' with the password: (\S+)")
STATUS = re.compile(r'class="badge status-(\w+)"')


class Failed(Exception):
    pass


@contextmanager
def step(title: str) -> Iterator[None]:
    print(f"-- {title}", flush=True)
    started = time.monotonic()
    try:
        yield
    except Exception as exc:
        raise Failed(f"{title}: {exc}") from exc
    print(f"   ok ({time.monotonic() - started:.0f} s)", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def wait_for_run(client: httpx.Client, path: str, timeout: float = 180) -> str:
    """Polls the run page until the run has finished; returns the page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(path)
        check(page.status_code == 200, f"GET {path}: {page.status_code}")
        status = STATUS.search(page.text)
        if status and status.group(1) not in ("queued", "running"):
            check(status.group(1) == "succeeded", f"the run at {path} ended {status.group(1)}")
            return page.text
        time.sleep(1)
    raise AssertionError(f"the run at {path} did not finish within {timeout:.0f} s")


def zip_contents(client: httpx.Client, run_path: str) -> dict[str, bytes]:
    response = client.get(f"{run_path}artifacts.zip")
    check(response.status_code == 200, f"the zip: HTTP {response.status_code}")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def log_in(stack: Stack, password: str) -> httpx.Client:
    client = login(stack.url, "admin", password)
    # The first connection test imports LiteLLM in a web worker: far beyond a page's 10 s on a busy machine.
    client.timeout = httpx.Timeout(120)
    return client


def post_form(client: httpx.Client, path: str, data: dict[str, str], form_page: str | None = None) -> httpx.Response:
    page = client.get(form_page or path)
    return client.post(path, data={**data, "csrfmiddlewaretoken": csrf_token(page.text)})


@dataclass
class Saved:
    """What the first deployment leaves behind, to be found again after the redeploy."""

    password: str
    run_path: str
    artifacts: dict[str, bytes]
    connection: int
    key: str
    api_base: str  # where the key may go: the same address after the redeploy, or it is cleared by design


def connection_form(fake: FakeLLM, key: str = "") -> dict[str, str]:
    return {
        "provider": "openai_compatible",
        "label": "Compose test",
        "api_key": key,
        "api_base": fake.base_url,
        "allow_private_network": "on",
        "allow_unpriced": "on",
        "default_model": "compose-test-model",
    }


def test_connection(client: httpx.Client, connection: int, fake: FakeLLM, key: str) -> None:
    """The Test connection button: the web process decrypts the stored key and sends it to the provider."""
    before = len(fake.requests)
    response = post_form(client, f"/settings/providers/{connection}/test/", {}, form_page="/settings/providers/")
    check(response.status_code == 302, f"test connection: HTTP {response.status_code}")
    page = client.get("/settings/providers/").text
    check("Connected to" in page, "the connection test did not succeed")
    sent = [r["headers"].get("Authorization") for r in fake.requests[before:]]
    check(sent == [f"Bearer {key}"], f"the provider got {len(sent)} requests, not one with the saved key")


def first_deployment(stack: Stack) -> Saved:
    with step("start the stack (podman-compose up)"):
        stack.up()
        stack.wait_until_serving()
    with step("the image's health check passes; the processes run as a non-root user"):
        health = images.podman("healthcheck", "run", stack.container("web"), capture=True, check=False)
        check(health.returncode == 0, f"health check: {health.stdout}{health.stderr}".strip())
        for service in ("web", "worker"):
            uid = images.podman("exec", stack.container(service), "id", "-u", capture=True).stdout.strip()
            check(uid not in ("", "0"), f"{service} runs as uid {uid!r}")
    with step("read the admin password from the web container's log"):
        found = PASSWORD.search(stack.logs("web"))
        check(found is not None, "no admin password in the web log")
        assert found is not None
        password = found.group(1)
    with step("log in as admin"):
        client = log_in(stack, password)
    with step(f"{WORKFLOW}: Validate"):
        validation = submit(client, WORKFLOW, {**INPUTS, "mode": "validate"})
        wait_for_run(client, validation)
    with step(f"{WORKFLOW}: Test, on the offline model"):
        response = post_form(client, f"{validation}test/", {}, form_page=validation)
        check(response.status_code == 302, f"starting the test run: HTTP {response.status_code}")
        run_path = response.headers["location"]
        page = wait_for_run(client, run_path)
        check("offline/demo" in page, "the test run did not use the offline model")
    with step("download the run's zip"):
        artifacts = zip_contents(client, run_path)
        check("notes.md" in artifacts and all(artifacts.values()), f"the zip holds {sorted(artifacts)}")
    with step("save a provider key and test the connection (the provider receives the key)"):
        key = f"sk-compose-{secrets.token_hex(16)}"
        with serving(stack) as fake:
            response = post_form(client, "/settings/providers/", connection_form(fake, key))
            check(response.status_code == 302, f"saving the connection: HTTP {response.status_code}")
            rows = re.findall(r'id="connection-(\d+)"', client.get("/settings/providers/").text)
            check(len(rows) == 1, f"expected one connection, found {rows}")
            connection = int(rows[0])
            test_connection(client, connection, fake, key)
            api_base = fake.base_url
    return Saved(password, run_path, artifacts, connection, key, api_base)


def after_redeploy(stack: Stack, saved: Saved) -> None:
    with step("redeploy, 1: podman-compose down (the containers go, the volumes stay)"):
        stack.down()
    with step("redeploy, 2: podman-compose up (new containers on the same volumes)"):
        stack.up()
        stack.wait_until_serving()
    with step("the admin account is kept (same password; no new one printed)"):
        log = stack.logs("web")
        check(PASSWORD.search(log) is None, "a new admin password was printed")
        client = log_in(stack, saved.password)
    with step("the test run and its artifacts are kept"):
        wait_for_run(client, saved.run_path, timeout=10)
        check(zip_contents(client, saved.run_path) == saved.artifacts, "the zip differs from the one before")
    with step("the provider key is kept and still decrypts (the provider receives the same key)"):
        page = client.get("/settings/providers/").text
        check('id="unreadable-keys"' not in page, "the settings page says the stored key cannot be decrypted")
        check(f'id="connection-{saved.connection}"' in page, "the connection is gone")
        # The same address as before: changing a connection's base URL clears its key (providers.services.
        # key_goes_elsewhere), so only an unchanged address proves the stored key itself still decrypts.
        port = int(saved.api_base.rsplit(":", 1)[1].split("/")[0])
        with serving(stack, port=port) as fake:
            check(fake.base_url == saved.api_base, f"the network moved: {fake.base_url} != {saved.api_base}")
            test_connection(client, saved.connection, fake, saved.key)


@contextmanager
def serving(stack: Stack, port: int = 0) -> Iterator[FakeLLM]:
    fake = FakeLLM(host=stack.gateway(), port=port).start()
    try:
        yield fake
    finally:
        fake.stop()


def stored_in_postgres(stack: Stack) -> None:
    with step("the data is in PostgreSQL, not in a SQLite file"):
        count = images.podman(
            "exec", stack.container("db"), "psql", "-U", "platform", "-d", "platform", "-tAc",
            "SELECT count(*) FROM runs_run", capture=True,
        ).stdout.strip()  # fmt: skip
        check(count == "2", f"runs_run holds {count!r} rows, not the 2 runs")
        files = images.podman("exec", stack.container("web"), "ls", "/data", capture=True).stdout.split()
        check("db.sqlite3" not in files, "a SQLite database was created on the data volume")


def scenario(profile: str, platform: str, postgres: str | None) -> None:
    print(f"== profile: {profile}", flush=True)
    variables = {"PLATFORM_IMAGE": platform, "DJANGO_ADMIN_PASSWORD": ""}
    port = free_port()
    variables["WEB_PORT"] = str(port)
    if profile == "postgres":
        assert postgres is not None
        password = secrets.token_urlsafe(24)
        variables.update(
            POSTGRES_IMAGE=postgres,
            POSTGRES_PASSWORD=password,
            DATABASE_URL=f"postgres://platform:{password}@db:5432/platform",
        )
    stack = Stack(
        project=f"agentic-ct-{profile}-{os.getpid()}",
        port=port,
        variables=variables,
        profile="postgres" if profile == "postgres" else None,
    )
    try:
        saved = first_deployment(stack)
        after_redeploy(stack, saved)
        if profile == "postgres":
            stored_in_postgres(stack)
    finally:
        print("-- stop the stack and remove its containers, volumes and network", flush=True)
        leftovers = stack.remove()
        if leftovers:
            print(f"   removed by hand: {', '.join(leftovers)}")
        print("   ok", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("sqlite", "postgres", "all"), default="all")
    profiles = ["sqlite", "postgres"] if (chosen := parser.parse_args().profile) == "all" else [chosen]
    started = time.monotonic()
    try:
        with step("podman, runc and debootstrap are installed"):
            images.require_tools()
        with step("the Debian base with Python 3.11 (debootstrap, cached)"):
            base = images.base_image()
        with step("build the platform image (Dockerfile, BASE_IMAGE=the Debian base)"):
            platform = images.platform_image(base)
        postgres = None
        if "postgres" in profiles:
            with step("build the PostgreSQL image (Debian's postgresql-15)"):
                postgres = images.postgres_image(base)
        for profile in profiles:
            scenario(profile, platform, postgres)
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"compose-test passed ({', '.join(profiles)}) in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
