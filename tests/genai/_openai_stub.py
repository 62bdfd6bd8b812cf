"""An OpenAI-compatible server on loopback, written for the tests: no model endpoint is
reachable from our machines, so this stands in for vLLM, llama.cpp, Ollama or a hosted API.

Routes: ``POST /v1/chat/completions`` (plain and ``stream: true`` server-sent events),
``POST /v1/embeddings``, ``GET /v1/models``. Answers are deterministic from the messages
and ``seed``: each word is chosen from a fixed vocabulary by scores hashed from the
messages, the word's position and the word; ``temperature`` 0 (or ``top_k`` 1) takes the
best word, a higher temperature samples among the ``top_k`` best with a generator seeded
by ``seed`` (no seed: a fresh random one, as real servers do), and ``max_tokens`` cuts the
answer (one word is one token; ``finish_reason`` ``length``). ``answer=`` replaces the
word generator with a function of the request (the demo's underwriter); ``max_tokens``
still cuts what it says.

Faults, queued with ``fail_next`` and taken one per chat request in order: ``429`` (with
``Retry-After``), ``500``, ``malformed`` (a 200 whose body is not JSON), ``hang`` (no
answer until the stub closes: the client's timeout fires) and ``text`` (a 200 whose
content is the given text, e.g. an answer that fails a JSON schema).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VOCABULARY = (
    "the", "loan", "policy", "applicant", "income", "ratio", "debt", "approve", "refer",
    "decline", "because", "section", "payslip", "employer", "contract", "purpose", "car",
    "home", "education", "risk", "review", "underwriter", "monthly", "payment", "limit",
    "rule", "clear", "short", "reason",
)  # fmt: skip
MODEL = "stub-chat-1"
NATURAL_WORDS = 12  # an answer's length when max_tokens does not cut it
HANG_LIMIT = 30.0  # a hung request still ends, so a failing test never hangs the suite
HOLD_LIMIT = 5.0  # how long answers wait for company when ``hold_for`` is set

Answer = Callable[[dict[str, Any]], str]


@dataclass
class Fault:
    kind: str
    retry_after: str | None = None
    text: str = ""


@dataclass
class Seen:
    """One request the stub received: path, JSON body, headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def generate(body: dict[str, Any]) -> tuple[list[str], str]:
    """The words a chat request is answered with, and the finish reason."""
    messages = json.dumps(body.get("messages"), sort_keys=True)
    context = hashlib.sha256(messages.encode()).digest()
    temperature = float(
        body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0
    )
    top_k = int(body.get("top_k") or len(VOCABULARY))
    limit = int(body.get("max_tokens") or NATURAL_WORDS)
    seed = body.get("seed")
    draw = random.Random(seed if seed is not None else os.urandom(16))
    words: list[str] = []
    for step in range(min(limit, NATURAL_WORDS)):
        scored = sorted(
            VOCABULARY,
            key=lambda w: -_score(context, step, w),
        )[: max(1, top_k)]
        if temperature == 0 or len(scored) == 1:
            words.append(scored[0])
            continue
        weights = [math.exp(_score(context, step, w) / temperature) for w in scored]
        words.append(draw.choices(scored, weights=weights)[0])
    return words, "length" if limit < NATURAL_WORDS else "stop"


def _score(context: bytes, step: int, word: str) -> float:
    digest = hashlib.sha256(context + step.to_bytes(4, "big") + word.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 4.0


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector hashed from ``text``: the same text, the same vector."""
    values = []
    for i in range(dimensions):
        digest = hashlib.sha256(f"{i}:{text}".encode()).digest()
        values.append(int.from_bytes(digest[:4], "big") / 2**31 - 1.0)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class OpenAIStub:
    """The server; ``with OpenAIStub() as stub:`` serves at ``stub.base_url`` (…/v1)."""

    def __init__(self, *, api_key: str | None = None, answer: Answer | None = None) -> None:
        self.api_key = api_key
        self.answer = answer
        self.seen: list[Seen] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._gate = threading.Condition()
        self._in_flight = 0
        self.max_in_flight = 0  # the most chat requests answered at once
        # Chat answers wait (bounded) until this many have been in flight at once; from
        # then on they answer at once, so the last calls of a run never wait for company.
        self.hold_for = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=HANG_LIMIT)

    def fail_next(
        self, kind: str, times: int = 1, *, retry_after: str | None = None, text: str = ""
    ) -> None:
        """Answer the next ``times`` chat requests with fault ``kind`` (see the module doc)."""
        assert kind in ("429", "500", "malformed", "hang", "text"), kind
        with self._lock:
            self._faults.extend(Fault(kind, retry_after, text) for _ in range(times))

    def _enter(self) -> None:
        with self._gate:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._gate.notify_all()
            self._gate.wait_for(lambda: self.max_in_flight >= self.hold_for, timeout=HOLD_LIMIT)

    def _leave(self) -> None:
        with self._gate:
            self._in_flight -= 1

    def chat_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/chat/completions"]

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _content(self, body: dict[str, Any]) -> tuple[str, str]:
        """(content, finish_reason) of a chat request."""
        if self.answer is None:
            words, finish = generate(body)
            return " ".join(words), finish
        words = self.answer(body).split(" ")
        limit = body.get("max_tokens")
        if limit is not None and len(words) > int(limit):
            return " ".join(words[: int(limit)]), "length"
        return " ".join(words), "stop"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: OpenAIStub


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # quiet: pytest shows what a failing test needs

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": "stub_error"}}, headers)

    def _authorised(self) -> bool:
        stub = self.server.stub
        if stub.api_key is None or self.headers.get("Authorization") == f"Bearer {stub.api_key}":
            return True
        self._error(401, "invalid api key")
        return False

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        stub = self.server.stub
        stub.seen.append(Seen(self.path, {}, dict(self.headers)))
        if not self._authorised():
            return
        if self.path == "/v1/models":
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "shipyard-tests"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400, "the body is not JSON")
            return
        stub.seen.append(Seen(self.path, body, dict(self.headers)))
        if not self._authorised():
            return
        if self.path == "/v1/chat/completions":
            stub._enter()
            try:
                self._chat(stub, body)
            finally:
                stub._leave()
        elif self.path == "/v1/embeddings":
            self._embeddings(body)
        else:
            self._error(404, f"no route {self.path}")

    def _chat(self, stub: OpenAIStub, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            self._error(400, "model and messages are required")
            return
        fault = stub._next_fault()
        if fault is not None and fault.kind == "hang":
            stub._closing.wait(HANG_LIMIT)
            return
        if fault is not None and fault.kind == "429":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._error(429, "rate limited", headers)
            return
        if fault is not None and fault.kind == "500":
            self._error(500, "the stub failed on purpose")
            return
        if fault is not None and fault.kind == "malformed":
            self._send(200, b'{"choices": [ this is not json')
            return
        if fault is not None and fault.kind == "text":
            content, finish = fault.text, "stop"
        else:
            content, finish = stub._content(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        identity = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        if body.get("stream"):
            self._stream(identity, content, finish, usage, body)
            return
        self._send(
            200,
            {
                "id": f"chatcmpl-{identity}",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "system_fingerprint": "stub",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(
        self, identity: str, content: str, finish: str, usage: dict[str, int], body: dict[str, Any]
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(delta: dict[str, Any], reason: str | None, extra: dict[str, Any]) -> None:
            chunk = {
                "id": f"chatcmpl-{identity}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
                **extra,
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        words = content.split(" ")
        event({"role": "assistant", "content": ""}, None, {})
        for i, word in enumerate(words):
            event({"content": word if i == 0 else " " + word}, None, {})
        event({}, finish, {})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk = {
                "id": f"chatcmpl-{identity}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL,
                "choices": [],
                "usage": usage,
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _embeddings(self, body: dict[str, Any]) -> None:
        given = body.get("input")
        texts = [given] if isinstance(given, str) else list(given or [])
        if not texts or not all(isinstance(t, str) for t in texts):
            self._error(400, "input must be text or a list of texts")
            return
        dimensions = int(body.get("dimensions") or 8)
        vectors = [embedding(t, dimensions) for t in texts]
        if body.get("encoding_format") == "base64":  # what the openai client asks by default
            packed: list[Any] = [
                base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors
            ]
        else:
            packed = vectors
        data = [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(packed)
        ]
        tokens = sum(len(t.split()) for t in texts)
        self._send(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "stub-embed-1",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
