"""Fake provider servers on 127.0.0.1 (random port): OpenAI-compatible chat completions and the Anthropic
Messages API, with scripted answers, tool calls, usage and injected faults. Tests drive the real LiteLLM
path against them over real HTTP.

Script entries (consumed in order; when the script is empty, a plain answer is sent):
  {"status": 429, "headers": {"Retry-After": "0"}}   an HTTP error with an OpenAI-style error body
  {"delay": 3.0}                                      sleep before answering (past a timeout)
  {"malformed": True}                                 200 with a body that is not JSON
  {"truncated": True}                                 200 with a JSON answer cut off half-way
  {"drop": True}                                      close the connection without an answer
  {"tool_call": {"name": ..., "arguments": {...}}}    answer with one tool call
  {"content": "text"}                                 answer with this text
A request with "stream": true is answered with server-sent events, one chunk per word (OpenAI flavour).
Flavours: "openai" (also DeepSeek and OpenAI-compatible servers), "anthropic", "gemini" (generateContent).

Faults that no server answer can produce (a refused port, an unknown host, TLS spoken to a plain HTTP port)
are base URLs, made by the helpers at the end of this module.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeLLM:
    def __init__(self, flavour: str = "openai") -> None:
        self.flavour = flavour
        self.script: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}" + ("/v1" if self.flavour == "openai" else "")

    def start(self) -> FakeLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for sock in list(self._open):  # keep-alive connections would otherwise outlive the server
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def push(self, *entries: dict[str, Any]) -> None:
        with self._lock:
            self.script.extend(entries)

    def _next(self) -> dict[str, Any]:
        with self._lock:
            return self.script.pop(0) if self.script else {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                fake._open.add(self.connection)

            def finish(self) -> None:
                fake._open.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                entry = fake._next()
                if entry.get("delay"):
                    time.sleep(entry["delay"])
                if entry.get("drop"):
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if "status" in entry and entry["status"] != 200:
                    payload = {"error": {"message": entry.get("message", "injected fault"), "type": "fault"}}
                    self._send(entry["status"], json.dumps(payload).encode(), entry.get("headers", {}))
                    return
                if entry.get("malformed"):
                    self._send(200, b"{not json", {})
                    return
                answer = {
                    "anthropic": fake.anthropic_answer,
                    "gemini": fake.gemini_answer,
                }.get(fake.flavour, fake.openai_answer)(body, entry)
                if entry.get("truncated"):
                    whole = json.dumps(answer).encode()
                    self._send(200, whole[: len(whole) // 2], {})
                    return
                if body.get("stream") and fake.flavour == "openai":
                    self._stream(answer)
                    return
                self._send(200, json.dumps(answer).encode(), {})

            def _stream(self, answer: dict[str, Any]) -> None:
                """Server-sent events, one chunk per word, then usage and [DONE], as OpenAI streams."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                words = (answer["choices"][0]["message"]["content"] or "").split(" ")
                base = {
                    "id": answer["id"],
                    "object": "chat.completion.chunk",
                    "created": answer["created"],
                    "model": answer["model"],
                }
                for i, word in enumerate(words):
                    delta = {"role": "assistant", "content": word if i == 0 else " " + word}
                    chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                done = {
                    **base,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": answer["usage"],
                }
                self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    @staticmethod
    def _last_user(body: dict[str, Any]) -> str:
        for message in reversed(body.get("messages", [])):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return ""

    def openai_answer(self, body: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": entry.get("content", f"Fake answer to: {self._last_user(body)[:80]}"),
        }
        finish = "stop"
        if "tool_call" in entry:
            call = entry["tool_call"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{len(self.requests)}",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                    }
                ],
            }
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        }

    def anthropic_answer(self, body: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": entry.get("content", f"Fake Claude answer to: {self._last_user(body)[:80]}")}
        ]
        stop = "end_turn"
        if "tool_call" in entry:
            call = entry["tool_call"]
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{len(self.requests)}",
                    "name": call["name"],
                    "input": call["arguments"],
                }
            ]
            stop = "tool_use"
        return {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 100, "output_tokens": 50},
        }

    def gemini_answer(self, body: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        contents = body.get("contents") or [{}]
        asked = " ".join(str(p.get("text", "")) for p in (contents[-1].get("parts") or []))
        return {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": entry.get("content", f"Fake Gemini answer to: {asked[:80]}")}],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 50, "totalTokenCount": 150},
            "modelVersion": "gemini-fake",
        }


@contextmanager
def fake_llm(flavour: str = "openai") -> Iterator[FakeLLM]:
    server = FakeLLM(flavour).start()
    try:
        yield server
    finally:
        server.stop()


# --- Faults below HTTP: base URLs that fail before any answer --------------------------------------------


def refused_base_url(path: str = "/v1") -> str:
    """A loopback port nothing listens on (bound, then closed), so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def unresolvable_base_url(path: str = "/v1") -> str:
    """A host name that never resolves (.invalid is reserved for this, RFC 2606)."""
    return f"http://no-such-host.invalid{path}"


def tls_mismatch_base_url(server: FakeLLM) -> str:
    """https:// to the fake's plain HTTP port: the TLS handshake fails."""
    return server.base_url.replace("http://", "https://", 1)
