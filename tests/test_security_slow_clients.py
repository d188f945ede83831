"""Slow clients against the web server as deployed (scripts/entrypoint.sh serve: gunicorn with the uvicorn worker
of config/web_server.py): connections that send nothing, their headers a byte a second, or their body a byte a
second are closed at their deadlines, a page still answers meanwhile, and a client sending at a fair pace is served;
clients that never read their answers are reset.

Before the guard (`--worker-class uvicorn_worker.UvicornWorker`), none of 300 such connections was closed after
40 s, and once they outnumbered the worker's open files a page waited as long as they were held."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import cast

import httpx
import pytest

from .support.processes import start_web, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
HEADER_SECONDS = 3  # WEB_HEADER_TIMEOUT_SECONDS for these servers (20 by default), so the tests are short
SEND_SECONDS = 3  # WEB_SEND_TIMEOUT_SECONDS likewise (60 by default)
ESTABLISHED = 1  # TCP_ESTABLISHED in linux/tcp_states.h
SLACK = 20  # a busy 2-core machine: deadlines are checked with this much to spare
SLOW_BODY = (
    b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of a client socket (Linux TCP_INFO): ESTABLISHED until the server lets go."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


async def slow_client(port: int, kind: str, started: float, hold: float = HEADER_SECONDS + SLACK) -> float | None:
    """One attacker: "silent" sends nothing, "headers" a request line then a header byte a second, "body" whole
    headers then a body byte a second. Returns when the server closed the connection (s after `started`), or
    None if it was still open after `hold` seconds (then it hangs up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write({"silent": b"", "headers": b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n", "body": SLOW_BODY}[kind])

    async def dribble() -> None:
        while kind != "silent":
            await asyncio.sleep(1)
            writer.write(b"X" if kind == "headers" else b"a")
            try:
                await writer.drain()
            except OSError:  # closed by the server: the read below sees it
                return

    dribbling = asyncio.create_task(dribble())
    try:
        await asyncio.wait_for(reader.read(), hold)  # b"" (or an error) once the server closes
        return time.monotonic() - started
    except TimeoutError:
        return None
    except OSError:
        return time.monotonic() - started
    finally:
        dribbling.cancel()
        writer.close()


async def fair_client(port: int) -> bytes:
    """Headers in two parts a second apart, then a 6,000-byte body at 1,000 bytes a second (twice the minimum
    rate; the whole request takes longer than the header deadline): the server must answer it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await asyncio.sleep(1)
        writer.write(b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 6000\r\n\r\n")
        for _ in range(6):
            await asyncio.sleep(1)
            writer.write(b"a" * 1000)
            await writer.drain()
        return await asyncio.wait_for(reader.read(200), SLACK)
    except OSError as exc:
        return f"the connection was lost: {exc!r}".encode()
    finally:
        writer.close()


async def page(base_url: str) -> tuple[int, float]:
    """A normal client's request for a page (the API's schema: a Django view that needs no login)."""
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base_url}/api/v1/openapi.json", timeout=HEADER_SECONDS + SLACK)
    return response.status_code, time.monotonic() - started


def test_slow_clients_are_closed_at_their_deadlines_while_a_page_and_a_fair_paced_client_are_served(tmp_path):
    web, base_url = start_web(tmp_path / "web.log", WEB_HEADER_TIMEOUT_SECONDS=str(HEADER_SECONDS))
    port = int(base_url.rsplit(":", 1)[1])

    async def attack() -> tuple[dict[str, list[float | None]], tuple[int, float], bytes]:
        started = time.monotonic()
        kinds = ["silent", "headers", "body"]
        attackers = [asyncio.create_task(slow_client(port, kind, started)) for kind in kinds for _ in range(100)]
        fair = asyncio.create_task(fair_client(port))
        await asyncio.sleep(1)  # the 300 connect and start dribbling
        answered = await page(base_url)
        closed = await asyncio.gather(*attackers)
        return {kind: list(closed[i * 100 : (i + 1) * 100]) for i, kind in enumerate(kinds)}, answered, await fair

    try:
        closed, (status, seconds), fair_answer = asyncio.run(attack())
    finally:
        stop(web)
    log = (tmp_path / "web.log").read_text()
    assert status == 200 and seconds < 10, f"a page took {seconds:.1f} s during the attack"
    for kind, times in closed.items():
        still_open = [t for t in times if t is None]
        assert not still_open, f"{len(still_open)} {kind} connections were open after {HEADER_SECONDS + SLACK} s"
        assert min(t for t in times if t is not None) >= HEADER_SECONDS - 0.5, f"{kind}: closed before the deadline"
    assert fair_answer.startswith(b"HTTP/1.1 "), f"the fair-paced client got {fair_answer!r}"
    assert log.count("its request headers were not complete within 3 s") >= 200  # the log says why, each time
    assert log.count("its request body came slower than 500 bytes a second") >= 100


def test_slow_connections_past_the_open_files_limit_keep_a_page_waiting_only_until_the_header_deadline(tmp_path):
    # 400 silent connections against a worker allowed 256 open files: it cannot accept the page's connection
    # until the guard closes theirs. Without the guard the page waits as long as the attacker holds them: here
    # longer than the page waits.
    web, base_url = start_web(tmp_path / "web.log", open_files=256, WEB_HEADER_TIMEOUT_SECONDS=str(HEADER_SECONDS))
    port = int(base_url.rsplit(":", 1)[1])

    async def attack() -> tuple[int, float]:
        started = time.monotonic()
        hold = HEADER_SECONDS + SLACK + 10
        attackers = [asyncio.create_task(slow_client(port, "silent", started, hold)) for _ in range(400)]
        await asyncio.sleep(1)
        try:
            return await page(base_url)
        finally:
            await asyncio.gather(*attackers)

    try:
        status, seconds = asyncio.run(attack())
    except httpx.TimeoutException:
        raise AssertionError(f"the page did not answer within {HEADER_SECONDS + SLACK} s of the flood") from None
    finally:
        stop(web)
    assert status == 200 and seconds < HEADER_SECONDS + SLACK
    assert "Too many open files" in (tmp_path / "web.log").read_text(), "the flood never reached the limit"


def test_clients_that_never_read_their_answers_are_cut_off_after_the_send_timeout(tmp_path, catalog):
    # 10 connections each ask for an 8 MiB artifact and read nothing, through a 4 KiB receive buffer: past what
    # the kernel holds, the answer waits in the server, which stops taking more and would wait for ever.
    from api.tokens import create_token
    from runs.models import Artifact, Run

    from .factories import RunFactory, UserFactory

    alice = UserFactory(username="alice")
    run = cast(Run, RunFactory(user=alice, workflow_version=catalog.latest_version, status="succeeded"))
    Artifact.write(run, "notes.md", b"x" * (8 << 20))
    secret = create_token(user=alice, name="e2e", scope="read").secret
    web, base_url = start_web(tmp_path / "web.log", WEB_SEND_TIMEOUT_SECONDS=str(SEND_SECONDS))
    port = int(base_url.rsplit(":", 1)[1])
    request = (
        f"GET /api/v1/runs/{run.pk}/artifacts/notes.md HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {secret}\r\n\r\n"
    ).encode()
    log = tmp_path / "web.log"
    readers: list[socket.socket] = []
    started = time.monotonic()
    try:
        for _ in range(10):
            reader = socket.socket()
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect(("127.0.0.1", port))
            reader.sendall(request)
            readers.append(reader)
        status, seconds = asyncio.run(page(base_url))
        assert status == 200 and seconds < 10, f"a page took {seconds:.1f} s beside the non-readers"
        wait_for(
            lambda: log.read_text().count(f"it left its answer unread for {SEND_SECONDS} s") >= 10,
            SEND_SECONDS + SLACK,
            message="the 10 non-readers to be cut off",
        )
        assert time.monotonic() - started >= SEND_SECONDS - 0.5, "cut off before the timeout"
        # and let go: a graceful close would wait for the unread answer to be flushed, i.e. for ever
        wait_for(lambda: ESTABLISHED not in map(tcp_state, readers), SLACK, message="their connections to end")
    finally:
        for reader in readers:
            reader.close()
        stop(web)
