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
  {"chunk_delay": 0.5}                                when streaming, sleep this long before each chunk
  {"drop_after": 5}                                   when streaming, drop the connection after 5 events
  {"redirect": "http://0.0.0.0:8/"}                   307 to that address (see the redirect section below)
  {"hang": True}                                      read the request, then never answer (until stop())
  {"stall_after": 2}                                  when streaming, send headers and 2 events, then go silent
Random faults (the fault suite, `FakeLLM(faults=Faults(rate=0.15, seed=1))`): when the script is empty, each
request is, with probability `rate`, one of the fault kinds in `Faults.KINDS` instead of the default answer;
`fault_counts` says how many of each were sent. Each request's record says its `fault` (or None) and `ok`
(True once a whole answer was sent), so a conversation answered twice can be counted.
A request with "stream": true is answered with server-sent events, one chunk per word (OpenAI or Anthropic
flavour), tool calls included. `default` is the entry used when the script is empty (e.g. {"delay": 2} for a
provider that always takes 2 s). Each request records its arrival (`at`) and, when streamed, when its first
chunk was written (`first_chunk_at`), both as time.time() values.

Usage (token counts) is a constant 100 prompt / 50 completion tokens by default. Opt in to measured usage
with `FakeLLM(usage="measured")` (see the "Measured usage" section below): prompt tokens are counted from the
request the server really received (its messages and tools, with LiteLLM's tokenizer for the model, as a
provider counts its own), completion tokens from the answer sent; `fill=True` makes every plain answer as long
as the request's max_tokens allows, the worst case a budget must hold, and still well formed (checks pass).
Flavours: "openai" (also DeepSeek and OpenAI-compatible servers), "anthropic", "gemini" (generateContent,
streamed as server-sent events for streamGenerateContent).

GET /v1/models lists `models` (default ["llama3.2", "qwen2.5-coder"]); `model_requests` records the headers
of each such request.

Faults that no server answer can produce (a refused port, an unknown host, TLS spoken to a plain HTTP port)
are base URLs, made by the helpers at the end of this module.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Faults:
    """Random transient faults, reproducible from a seed. `kinds` weights each kind equally."""

    KINDS: dict[str, dict[str, Any]] = {
        "429": {"status": 429, "headers": {"Retry-After": "1"}},
        "500": {"status": 500},
        "503": {"status": 503},
        "reset": {"drop": True},
        "cut": {"drop_after": 3},
        "hang": {"hang": True},
        "stall": {"stall_after": 2},
    }
    TRANSIENT = ("429", "500", "503", "reset", "cut")

    def __init__(self, rate: float, seed: int = 1, kinds: tuple[str, ...] = TRANSIENT) -> None:
        self.rate = rate
        self.kinds = kinds
        self.random = random.Random(seed)

    def pick(self) -> str | None:
        return self.random.choice(self.kinds) if self.random.random() < self.rate else None


class FakeLLM:
    def __init__(
        self,
        flavour: str = "openai",
        *,
        usage: str = "fixed",
        fill: bool = False,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if usage not in ("fixed", "measured"):
            raise ValueError("usage is 'fixed' or 'measured'")
        self.flavour = flavour
        self.usage = usage
        self.fill = fill
        self.script: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.default: dict[str, Any] = {}
        self.models: list[str] = ["llama3.2", "qwen2.5-coder"]  # what GET /v1/models lists (OpenAI flavour)
        self.model_requests: list[dict[str, str]] = []  # the headers of each GET /v1/models
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at once
        self.faults = faults
        self.fault_counts: Counter[str] = Counter()
        self._stopping = threading.Event()  # ends hangs and stalls when the server stops
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        # Another host: an address containers reach (make compose-test binds it to the compose network's gateway).
        self.host = host
        self.server = ThreadingHTTPServer((host, port), self._handler())  # port 0: any free one
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}" + ("/v1" if self.flavour == "openai" else "")

    def start(self) -> FakeLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
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
            if self.script:
                return self.script.pop(0)
            fault = self.faults.pick() if self.faults else None
            if fault is None:
                return dict(self.default)
            self.fault_counts[fault] += 1
            return {**self.default, **Faults.KINDS[fault], "fault": fault}

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

            def do_GET(self) -> None:
                # The model list an OpenAI-compatible server serves at {base}/models; nothing else is a GET.
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, b'{"error": {"message": "not found"}}', {})
                    return
                with fake._lock:
                    fake.model_requests.append(dict(self.headers))
                body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
                self._send(200, body.encode(), {})

            def do_POST(self) -> None:
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer()
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                # the headers as received (case-insensitive lookups: sync and async clients spell them differently)
                record = {"path": self.path, "headers": self.headers, "body": body, "at": time.time()}
                fake.requests.append(record)
                entry = fake._next()
                record["fault"] = entry.get("fault")
                if entry.get("hang"):  # accepted, read, and never answered
                    fake._stopping.wait(3600)
                    self.close_connection = True
                    return
                if entry.get("delay"):
                    time.sleep(entry["delay"])
                if entry.get("redirect"):
                    self._send(307, b"", {"Location": entry["redirect"]})
                    return
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
                streamed = body.get("stream") or "streamGenerateContent" in self.path
                if fake.flavour == "openai":  # what the model "said", to compare with what clients were shown
                    record["text"] = answer["choices"][0]["message"].get("content") or ""
                if streamed:
                    events = {"openai": sse_openai, "anthropic": sse_anthropic}.get(fake.flavour, sse_whole)(answer)
                    if "stall_after" in entry:  # headers and a few events, then silence with the socket open
                        self._stream(events[: entry["stall_after"]], 0, record, end=False)
                        fake._stopping.wait(3600)
                        return
                    if "drop_after" in entry:  # the connection dies mid-stream, after that many events
                        self._stream(events[: entry["drop_after"]], entry.get("chunk_delay", 0), record, end=False)
                        self.connection.shutdown(2)
                        return
                    self._stream(events, entry.get("chunk_delay", 0), record)
                    return
                self._send(200, json.dumps(answer).encode(), {})
                record["ok"] = True

            def _stream(
                self, events: list[bytes], chunk_delay: float, record: dict[str, Any], end: bool = True
            ) -> None:
                """Chunked transfer encoding, as providers stream: a body cut before its last chunk is an error
                the client sees, not a normal end."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for event in events:
                        if chunk_delay:
                            time.sleep(chunk_delay)
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        record.setdefault("first_chunk_at", time.time())
                    if end:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                        record["ok"] = True
                except (BrokenPipeError, ConnectionResetError):
                    record["aborted"] = True  # the client hung up mid-stream (a cancel)

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
            "content": self._content(body, entry, "Fake answer to: "),
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
            "usage": self._openai_usage(body, message),
        }

    def anthropic_answer(self, body: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": self._content(body, entry, "Fake Claude answer to: ")}
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
            "usage": self._anthropic_usage(body, content),
        }

    def _content(self, body: dict[str, Any], entry: dict[str, Any], prefix: str) -> str:
        """Scripted `content` alone (a poor answer is scripted), or followed by what a competent model adds
        when the entry says `well_formed` (see `answer`); else the plain answer."""
        if "content" not in entry:
            return self._plain_answer(body, prefix)
        return str(entry["content"]) + (well_formed(body) if entry.get("well_formed") else "")

    # -- Measured usage (opt-in: usage="measured", fill=True) -------------------------------------------------
    def _plain_answer(self, body: dict[str, Any], prefix: str) -> str:
        if self.fill:
            return self._filled(body)
        extra = well_formed(body)
        if extra.startswith("{"):  # a judge's verdict is the JSON alone
            return extra
        return f"{prefix}{self._last_user(body)[:80]}" + extra

    def _filled(self, body: dict[str, Any]) -> str:
        """As long as max_tokens allows and no longer (as counted for usage): the well-formed answer (a judge's
        verdict, its reason the padding) filled up with words, so a worst-case run still passes its checks.
        Only words when the well-formed part alone does not fit."""
        limit = int(body.get("max_tokens") or 16)
        extra = well_formed(body)
        verdict = json.loads(extra) if extra.startswith("{") else None

        def text(words: int) -> str:
            if verdict is not None:
                return json.dumps({**verdict, "reason": " ".join(["word"] * words)})
            return extra.lstrip() + " word" * words

        words = limit
        while words > 0 and (over := self._count(body, text=text(words)) - limit) > 0:
            words -= over
        if words <= 0 or not extra:
            return " ".join(["word"] * limit)  # one token per word: exactly as long as max_tokens allows
        return text(words)

    @staticmethod
    def _count(body: dict[str, Any], *, messages: list[dict[str, Any]] | None = None, text: str = "") -> int:
        from providers.llm import lib

        model = str(body.get("model") or "gpt-4o-mini")
        if messages is not None:
            return int(lib().token_counter(model=model, messages=messages, tools=body.get("tools") or None))
        return int(lib().token_counter(model=model, text=text, count_response_tokens=True)) if text else 0

    def _openai_usage(self, body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
        if self.usage == "fixed":
            return {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        answer = message.get("content") or json.dumps(message.get("tool_calls") or [])
        prompt = self._count(body, messages=body.get("messages", []))
        completion = min(int(body.get("max_tokens") or 1 << 30), self._count(body, text=answer))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _anthropic_usage(self, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
        if self.usage == "fixed":
            return {"input_tokens": 100, "output_tokens": 50}
        system = body.get("system")
        messages = ([{"role": "system", "content": json.dumps(system)}] if system else []) + body.get("messages", [])
        answer = json.dumps(content)
        completion = min(int(body.get("max_tokens") or 1 << 30), self._count(body, text=answer))
        return {"input_tokens": self._count(body, messages=messages), "output_tokens": completion}

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


# -- A plain answer a workflow's quality checks accept (docs/workflows.md "Checks") -------------------------
_ASKED = re.compile(r"Use these Markdown headings, in this order:\s*(.+?)\.?\s*$", re.MULTILINE)
_PATH = re.compile(r"(?<![\w/])references/[\w.-]+\.md")
JUDGE_MARKER = "You grade an answer against a rubric"


def answer(text: str) -> dict[str, Any]:
    """A scripted answer that starts with `text` and then passes the workflow's checks as a competent model's
    would (its sections and citations), for tests about something else that tell runs apart by their text."""
    return {"content": text, "well_formed": True}


def _text(content: Any) -> str:
    """A message's text: a string, or the text of its blocks (Anthropic's system and content), else its JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        return "\n".join(str(b.get("text", "")) for b in content)
    return json.dumps(content)


def well_formed(body: dict[str, Any]) -> str:
    """What a competent model adds to the plain answer: the sections the prompt asks for, each with a few
    sentences, citing the reference files the request names; or, asked to judge, full marks as JSON.
    Scripted `content` replaces all of it (a poor answer is scripted)."""
    texts = [_text(body.get("system") or "")] + [_text(m.get("content")) for m in body.get("messages", [])]
    if any(str(t).startswith(JUDGE_MARKER) for t in texts):
        names = re.findall(r'"name": "([^"]+)"', "\n".join(map(str, texts)))
        return json.dumps({"scores": dict.fromkeys(names, 1.0), "reason": "The fake judge likes it."})
    asked = next((m for t in texts if (m := _ASKED.search(str(t)))), None)
    if asked is None:
        return ""
    cited = sorted(set(_PATH.findall("\n".join(map(str, texts))))) or ["references/agent-loop.md"]
    filler = (
        "This part explains the idea in plain words, gives a short example a student can try, and says how it "
        f"connects to the rest of the topic, as described in {cited[0]}."
    )
    parts = [f"\n\n## {name.strip()}\n\n{filler} {filler}" for name in asked.group(1).split(";") if name.strip()]
    return "".join(parts) + "\n\nSources: " + ", ".join(cited)


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def sse_openai(answer: dict[str, Any]) -> list[bytes]:
    """An OpenAI chat completion as the chunks OpenAI streams: one per word, tool calls, then usage."""
    base = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
    }
    choice = answer["choices"][0]
    message = choice["message"]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": w} for w in _words(message["content"] or "")]
    if not message["content"]:
        deltas = []
    for i, call in enumerate(message.get("tool_calls") or []):
        head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        head["function"]["arguments"] = ""
        deltas.append({"role": "assistant", "content": None, "tool_calls": [head]})
        deltas.append({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]})
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    chunks.append({**base, "choices": [], "usage": answer["usage"]})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def sse_whole(answer: dict[str, Any]) -> list[bytes]:
    """The whole answer as one server-sent event (Gemini's streamGenerateContent with alt=sse)."""
    return [f"data: {json.dumps(answer)}\n\n".encode()]


def sse_anthropic(answer: dict[str, Any]) -> list[bytes]:
    """An Anthropic message as the events the Messages API streams."""
    start = {
        **answer,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": answer["usage"]["input_tokens"], "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(answer["content"]):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
            )
            for word in _words(block["text"]):
                delta = {"type": "text_delta", "text": word}
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": head})
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = {"output_tokens": answer["usage"]["output_tokens"]}
    events.append(
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": answer["stop_reason"]}, "usage": usage})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


@contextmanager
def fake_llm(flavour: str = "openai", **options: Any) -> Iterator[FakeLLM]:
    server = FakeLLM(flavour, **options).start()
    try:
        yield server
    finally:
        server.stop()


# --- Redirects (SSRF tests): a listener that only counts who connects to it -----------------------------


class ConnectionCounter:
    """A TCP listener on every local address (so 0.0.0.0 and 127.0.0.1 reach it) that counts accepted
    connections and answers nothing: the redirect target a provider call must never reach."""

    def __init__(self) -> None:
        self.connections = 0
        self.sock = socket.create_server(("0.0.0.0", 0))  # noqa: S104 - 0.0.0.0 must reach it
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def __enter__(self) -> ConnectionCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


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
