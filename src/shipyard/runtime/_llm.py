"""Call an OpenAI-compatible chat completions endpoint for an llm node, with the standard library.

Copied into every bundle. A node's settings (model, seed, temperature, top_k, …) are
locked in its ``llm.json``; where the endpoint is, and its key, are the host's to say,
read when the bundle loads:

    SHIPYARD_LLM_BASE_URL      the API's base, e.g. http://127.0.0.1:8000/v1 (vLLM,
                               llama.cpp, Ollama) or a hosted endpoint's
    SHIPYARD_LLM_API_KEY       sent as ``Authorization: Bearer``; never logged or recorded
    SHIPYARD_LLM_API_KEY_FILE  or: a file holding the key, read at each call (a rotated
                               secret is picked up without a restart)
    SHIPYARD_LLM_CONCURRENCY   calls one node keeps in flight at once (default 4)

A host may also build the ``Endpoint`` itself (Shipyard's serve and batch do, from an
environment's config) and give it to the executor.

So one bundle runs against a local server in uat and a hosted endpoint in production.
A call that times out, or is answered 408, 429 or 5xx, is tried again a bounded number of
times, waiting what ``Retry-After`` asks (at most a minute) or an exponential backoff.
Redirects are refused, so the key goes only to the configured host.

Every call made while ``recorded_calls()`` is open in the calling thread is recorded
(prompt hash, rendered prompt, settings, the model the endpoint reports, tokens, latency,
answer) for audit.
"""

from __future__ import annotations

import contextvars
import email.utils
import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import EndpointError, ModelError

BASE_URL_ENV = "SHIPYARD_LLM_BASE_URL"
API_KEY_ENV = "SHIPYARD_LLM_API_KEY"
API_KEY_FILE_ENV = "SHIPYARD_LLM_API_KEY_FILE"
CONCURRENCY_ENV = "SHIPYARD_LLM_CONCURRENCY"
DEFAULT_CONCURRENCY = 4

# What llm.json locks, in the order it lists them; None means "the endpoint's default".
SETTINGS = ("model", "seed", "temperature", "top_k", "top_p", "max_tokens", "stop")
DEFAULT_TIMEOUT = 60.0  # seconds to connect, and between bytes of the answer
DEFAULT_RETRIES = 3
MAX_RETRY_AFTER = 60.0  # a longer Retry-After fails the call instead of holding it
MAX_BACKOFF = 8.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ANSWER_BYTES = 16 * 1024 * 1024

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Endpoint:
    """Where an llm node's calls go: ``base_url`` (None: not configured), concurrency, and
    the key: ``api_key`` itself, or ``api_key_file``, a file holding it (read at each call).
    """

    base_url: str | None
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY
    api_key_file: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Endpoint:
        """The endpoint the host's environment variables name; ModelError when malformed."""
        base = environ.get(BASE_URL_ENV, "").strip() or None
        if base is not None:
            parts = urllib.parse.urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ModelError(f"{BASE_URL_ENV} must be an http(s) URL, not {shown(base)!r}")
        text = environ.get(CONCURRENCY_ENV, "").strip()
        try:
            concurrency = int(text) if text else DEFAULT_CONCURRENCY
        except ValueError:
            concurrency = 0
        if concurrency < 1:
            raise ModelError(f"{CONCURRENCY_ENV} must be a whole number >= 1, not {text!r}")
        key, key_file = environ.get(API_KEY_ENV) or None, environ.get(API_KEY_FILE_ENV) or None
        if key and key_file:
            raise ModelError(f"set {API_KEY_ENV} or {API_KEY_FILE_ENV}, not both")
        return cls(base, key, concurrency, key_file)

    def key(self) -> str | None:
        """The key to send: ``api_key``, or what ``api_key_file`` holds now (stripped).

        Raises EndpointError naming the file (never its content) when it cannot be read
        or is empty.
        """
        if self.api_key_file is None:
            return self.api_key
        short = "has an API key file that cannot be read"
        try:
            with open(self.api_key_file, encoding="utf-8") as file:
                text = file.read(64 * 1024).strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise EndpointError(
                f"the API key file {self.api_key_file} cannot be read ({why})", reason=short
            ) from None
        if not text:
            raise EndpointError(f"the API key file {self.api_key_file} is empty", reason=short)
        return text


def shown(url: str) -> str:
    """``url`` fit for a message or a record: no user, password or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Recorder(list[dict[str, Any]]):
    """The records of a ``recorded_calls`` block, and whom to tell when a call ends."""

    def __init__(self, on_call: Callable[[dict[str, Any]], None] | None) -> None:
        super().__init__()
        self.on_call = on_call

    def add(self, record: dict[str, Any]) -> None:
        self.append(record)
        if self.on_call is not None:
            self.on_call(record)


_recorder: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar(
    "shipyard_llm_calls", default=None
)


@contextmanager
def recorded_calls(
    on_call: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Collect a record of every llm call made in this context (this thread or task).

    Records are dicts: ``node``, ``row``, ``prompt_sha256``, ``prompt`` (the messages),
    ``settings``, ``endpoint`` (base URL without credentials), ``model`` (as the endpoint
    reported it), ``usage`` (tokens), ``latency_ms``, ``attempts``, ``finish_reason``,
    ``answer``, and ``error`` when the call failed. ``on_call(record)`` is called as each
    call ends (from the thread that made it: a node calls ``concurrency`` at a time), so
    a batch run can count calls while a chunk is still being scored.
    """
    calls = _Recorder(on_call)
    token = _recorder.set(calls)
    try:
        yield calls
    finally:
        _recorder.reset(token)


def prompt_hash(messages: list[dict[str, str]]) -> str:
    """sha256 of the messages as canonical JSON: the same prompt always hashes the same."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is raised as an HTTPError, and the key stays where it was sent


_OPENER = urllib.request.build_opener(_NoRedirect)


class ChatClient:
    """An llm node's calls: ``client(prompts)`` answers every row, ``concurrency`` at a time.

    ``settings`` is the node's ``llm.json``; ``messages`` says each prompt is a chat
    (JSON list of ``{role, content}``) rather than plain text sent as one user message.
    ``sleep`` and ``clock`` are seams for tests. Raises EndpointError when a call fails
    after its retries (or, with ``on_error`` ``null``, answers None for that row).
    """

    def __init__(
        self,
        node: str,
        settings: Mapping[str, Any],
        endpoint: Endpoint,
        *,
        messages: bool = False,
        sleep: Sleep = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.settings = dict(settings)
        self.endpoint = endpoint
        self.messages = messages
        self.timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
        retries = settings.get("retries")
        self.retries = DEFAULT_RETRIES if retries is None else int(retries)
        self.on_error = str(settings.get("on_error") or "raise")
        self._sleep = sleep
        self._clock = clock
        self._slots = threading.BoundedSemaphore(endpoint.concurrency)
        self._body = {k: settings[k] for k in SETTINGS if settings.get(k) is not None}
        if settings.get("response_format") is not None:
            self._body["response_format"] = settings["response_format"]
        self._locked = {k: settings.get(k) for k in (*SETTINGS, "response_format")}

    def __call__(self, prompt: Any) -> np.ndarray:
        prompts = np.asarray(prompt, dtype=object).tolist()
        if not isinstance(prompts, list):
            prompts = [prompts]
        calls = _recorder.get()
        answers: list[str | None] = [None] * len(prompts)
        rows = [i for i, p in enumerate(prompts) if p is not None]

        def one(row: int) -> None:
            answers[row] = self._answer(prompts[row], row, calls)

        if len(rows) <= 1:
            for row in rows:
                one(row)
        else:
            workers = min(self.endpoint.concurrency, len(rows))
            with ThreadPoolExecutor(workers, thread_name_prefix=f"llm-{self.node}") as pool:
                for future in [pool.submit(one, row) for row in rows]:
                    future.result()  # the first failure is raised; the others finish first
        out = np.empty(len(prompts), dtype=object)
        out[:] = answers
        return out

    def _messages(self, prompt: Any) -> list[dict[str, str]]:
        if not self.messages:
            return [{"role": "user", "content": str(prompt)}]
        chat = json.loads(prompt)
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]

    def _answer(self, prompt: Any, row: int, calls: _Recorder | None) -> str | None:
        messages = self._messages(prompt)
        record: dict[str, Any] = {
            "node": self.node,
            "row": row,
            "prompt_sha256": prompt_hash(messages),
            "prompt": messages,
            "settings": self._locked,
            "endpoint": shown(self.endpoint.base_url) if self.endpoint.base_url else None,
        }
        started = self._clock()
        try:
            with self._slots:
                reply, attempts = self._call(messages)
        except EndpointError as exc:
            record.update(latency_ms=_ms(self._clock() - started), answer=None, error=str(exc))
            if calls is not None:
                calls.add(record)
            if self.on_error == "null":
                return None
            raise
        record.update(latency_ms=_ms(self._clock() - started), attempts=attempts, **reply)
        if calls is not None:
            calls.add(record)
        answer: str = reply["answer"]
        return answer

    def _call(self, messages: list[dict[str, str]]) -> tuple[dict[str, Any], int]:
        """POST one chat completion, retrying what is worth retrying; (reply fields, attempts).

        Each failure is an EndpointError whose message names the endpoint and whose
        ``reason`` (for a client) does not.
        """
        if self.endpoint.base_url is None:
            raise EndpointError(
                f"no endpoint configured: set {BASE_URL_ENV} to an OpenAI-compatible base URL "
                "(e.g. http://127.0.0.1:8000/v1)",
                reason="is not configured",
            )
        url = self.endpoint.base_url.rstrip("/") + "/chat/completions"
        where = shown(url)
        data = json.dumps({**self._body, "messages": messages}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.endpoint.key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        attempts = 1 + max(self.retries, 0)
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            wait: float | None = None
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    body = response.read(MAX_ANSWER_BYTES + 1)
                return _reply(body, where), attempt
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                short = f"answered {exc.code}"
                if exc.code not in RETRY_STATUSES:
                    raise EndpointError(f"{where} {short}{detail}", reason=short) from None
                problem = f"{where} {short}{detail}"
                wait = _retry_after(exc.headers.get("Retry-After"))
                if wait is not None and wait > MAX_RETRY_AFTER:
                    later = f"asks to retry after {wait:g} s (more than {MAX_RETRY_AFTER:g} s)"
                    raise EndpointError(
                        f"{problem} and {later}", reason=f"{short} and {later}"
                    ) from None
            except TimeoutError:
                short = f"did not answer within {self.timeout:g} s"
                problem = f"{where} {short}"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    short = f"did not answer within {self.timeout:g} s"
                    problem = f"{where} {short}"
                else:
                    short = "cannot be reached"
                    problem = f"{where} {short} ({exc.reason})"
            except (ConnectionError, OSError) as exc:  # reset, refused mid-answer
                short = "broke the connection"
                problem = f"{where} {short} ({exc})"
            if attempt == attempts:
                raise EndpointError(
                    f"{problem}; {attempts} attempts", reason=f"{short} ({attempts} attempts)"
                ) from None
            self._sleep(wait if wait is not None else min(MAX_BACKOFF, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _reply(body: bytes, where: str) -> dict[str, Any]:
    """The fields of a chat completion Shipyard keeps; EndpointError when it is not one."""
    if len(body) > MAX_ANSWER_BYTES:
        short = f"sent an answer over {MAX_ANSWER_BYTES} bytes"
        raise EndpointError(f"{where} {short}", reason=short)
    try:
        document = json.loads(body)
        choice = document["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        text = body[:120].decode("utf-8", "replace")
        short = "sent something that is not a chat completion"
        raise EndpointError(
            f"{where} {short} ({type(exc).__name__}: {exc}; it begins {text!r})", reason=short
        ) from None
    if not isinstance(content, str):
        short = "sent a completion without text content"
        raise EndpointError(f"{where} {short}", reason=short)
    usage = document.get("usage") if isinstance(document.get("usage"), dict) else {}
    return {
        "model": document.get("model"),
        "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
        "finish_reason": choice.get("finish_reason"),
        "answer": content,
    }


def _error_detail(error: urllib.error.HTTPError) -> str:
    """``: the endpoint's message`` from an error answer, when it gives one."""
    try:
        body = error.read(4096)
        message = json.loads(body).get("error")
        if isinstance(message, dict):
            message = message.get("message")
        return f": {str(message)[:200]}" if message else ""
    except (ValueError, AttributeError, OSError):
        return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
