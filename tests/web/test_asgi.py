"""The raw ASGI plumbing: a bounded body, malformed JSON, a client that leaves."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shipyard.errors import ClientGone, HttpError
from shipyard.web import Message, decode_json, read_body, send_response


def _receive(*messages: Message) -> Any:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def _scope(**headers: str) -> dict[str, Any]:
    return {"headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


def _read(scope: dict[str, Any], *messages: Message, limit: int = 10) -> bytes:
    return asyncio.run(read_body(scope, _receive(*messages), limit))


def _chunk(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_in_chunks_is_joined() -> None:
    assert _read(_scope(), _chunk(b"ab", True), _chunk(b"", True), _chunk(b"cd")) == b"abcd"
    assert _read(_scope(), _chunk(b"")) == b""


def test_a_body_over_the_limit_is_413_by_content_length_before_reading() -> None:
    with pytest.raises(HttpError) as refused:
        _read(_scope(content_length="11"))  # nothing to receive: it must not read
    assert (refused.value.status, refused.value.kind) == (413, "TooLarge")
    assert "over the limit of 10 bytes" in str(refused.value)


def test_a_streamed_body_over_the_limit_is_413_without_content_length() -> None:
    with pytest.raises(HttpError) as refused:
        _read(_scope(), _chunk(b"123456", True), _chunk(b"123456", True))
    assert refused.value.status == 413


def test_a_content_length_that_is_not_a_number_is_400() -> None:
    with pytest.raises(HttpError) as refused:
        _read(_scope(content_length="ten"))
    assert (refused.value.status, refused.value.kind) == (400, "BadRequest")


def test_a_client_that_leaves_is_client_gone() -> None:
    with pytest.raises(ClientGone) as gone:
        _read(_scope(), _chunk(b"12", True), {"type": "http.disconnect"})
    assert gone.value.status == 499


def test_malformed_json_is_400_naming_the_problem() -> None:
    assert decode_json(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(HttpError) as refused:
        decode_json(b'{"a": ')
    assert (refused.value.status, refused.value.kind) == (400, "MalformedJSON")
    assert str(refused.value).startswith("the request body is not valid JSON")


def test_send_response_adds_content_length() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(send_response(send, 201, b"{}", [(b"content-type", b"application/json")]))
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        },
        {"type": "http.response.body", "body": b"{}"},
    ]
