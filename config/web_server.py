"""The web server's worker class: uvicorn's under gunicorn, with deadlines for slow clients (issue 23 item 9).

uvicorn (h11) closes an idle keep-alive connection after gunicorn's `keepalive` (2 s), and nothing else a client
controls has a limit: a connection that sends nothing, or sends its headers or its body a byte at a time, is held
for ever (measured before this guard: 300 such connections, none closed after 40 s). Each holds a file descriptor
of the worker; past the open-files limit the worker accepts nobody, and asyncio logs thousands of accept errors a
second. `SlowClientGuard` gives the client a deadline wherever it, not the application, is the one awaited:

- headers: the request line and headers must be complete within `WEB_HEADER_TIMEOUT_SECONDS` (20) of the
  connection opening or of the previous answer ending (nginx's `client_header_timeout`);
- body: after the headers, the body must keep coming at `WEB_BODY_MIN_BYTES_PER_SECOND` (500) on average, with
  the header timeout as a grace period (Apache's mod_reqtimeout `body=20,MinRate=500`); time while the server
  itself stopped reading (the application has not taken what came) is not counted;
- answer: once more of the answer waits to be sent than the transport holds (64 KiB past the kernel's buffers:
  asyncio calls pause_writing), the client must read enough for it to drain (below 16 KiB: resume_writing)
  within `WEB_SEND_TIMEOUT_SECONDS` (60) (nginx's `send_timeout`); a large download must so be read at about
  2 KB a second (Django sends 64 KiB pieces). A client that asks and never reads would otherwise hold its
  connection and its unsent answer for ever.

Past its deadline the connection is closed (reset, for an unread answer, which a close would wait to flush);
an application awaiting the body, or waiting to send, sees a disconnect. A client that sent its request in time
and reads what it is sent (a page, an event stream) has no deadline here, however long the application takes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Any

import h11
import uvicorn_worker
from uvicorn.protocols.http.h11_impl import H11Protocol


def _positive(name: str, default: str) -> float:
    value = float(os.environ.get(name) or default)
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds or bytes, not {value}")
    return value


HEADER_SECONDS = _positive("WEB_HEADER_TIMEOUT_SECONDS", "20")
BODY_MIN_BYTES_PER_SECOND = _positive("WEB_BODY_MIN_BYTES_PER_SECOND", "500")
SEND_SECONDS = _positive("WEB_SEND_TIMEOUT_SECONDS", "60")


class SlowClientGuard(H11Protocol):
    """uvicorn's h11 protocol with one timer per connection, for the phase in which the client is awaited."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None  # "headers", "body", or None (the application's turn)
        self._phase_started = 0.0
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None  # while the transport's buffer is over its mark

    # Every place the client's state can change is followed by _watch(), which (re)starts the phase's timer.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self._phase == "body":
            self._body_bytes += len(data)
        super().data_received(data)  # parses, then handle_events() below watches

    def handle_events(self) -> None:
        super().handle_events()
        self._watch()

    def on_response_complete(self) -> None:
        self._phase = None  # the next request (or the rest of this body) starts its own phase now
        super().on_response_complete()
        self._watch()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._stop()
        self._phase = "upgraded"  # the connection belongs to another protocol now
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        self._stop_send_timer()
        super().connection_lost(exc)

    def pause_writing(self) -> None:  # asyncio: the unsent answer passed the transport's high-water mark
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(SEND_SECONDS, self._answer_unread)

    def resume_writing(self) -> None:  # asyncio: the client read enough of it
        super().resume_writing()
        self._stop_send_timer()

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _answer_unread(self) -> None:
        self._send_timer = None
        if self.flow.write_paused:
            self._close(f"it left its answer unread for {SEND_SECONDS:g} s", abort=True)

    def _watch(self) -> None:
        if self._phase == "upgraded":
            return
        if self.transport.is_closing():
            self._stop()
            return
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase:
            return
        self._stop()
        self._phase, self._phase_started, self._body_bytes = phase, self.loop.time(), 0
        if phase == "headers":
            self._timer = self.loop.call_later(HEADER_SECONDS, self._headers_late)
        elif phase == "body":
            self._timer = self.loop.call_later(HEADER_SECONDS, self._check_body)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self._phase == "headers":
            self._close(f"its request headers were not complete within {HEADER_SECONDS:g} s")

    def _check_body(self) -> None:
        self._timer = None
        if self._phase != "body":
            return
        if self.flow.read_paused:  # our pause, not the client's slowness: check again later, not counting it
            self._phase_started += 1
            self._timer = self.loop.call_later(1, self._check_body)
            return
        deadline = self._phase_started + HEADER_SECONDS + self._body_bytes / BODY_MIN_BYTES_PER_SECOND
        if self.loop.time() >= deadline:
            self._close(f"its request body came slower than {BODY_MIN_BYTES_PER_SECOND:g} bytes a second")
        else:
            self._timer = self.loop.call_at(deadline, self._check_body)

    def _close(self, why: str, abort: bool = False) -> None:
        if abort or not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            self.logger.info("Closed the connection of %s: %s.", client, why)
            if abort:
                # A reset, as nginx's `reset_timedout_connection`: a plain close would leave the unsent answer
                # in the kernel, which would keep trying to deliver it to a client that reads nothing.
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()
            else:
                self.transport.close()


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """The worker class scripts/entrypoint.sh gives gunicorn: uvicorn_worker's, serving HTTP/1.1 through the guard."""

    CONFIG_KWARGS = {"loop": "auto", "http": SlowClientGuard}
