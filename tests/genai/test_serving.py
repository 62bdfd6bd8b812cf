"""A GenAI bundle served by ``shipyard serve`` on loopback, in front of the loopback endpoint:
what a client sees when the language model fails, and what the server keeps of each call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import predict_path, serve_process

from ._loans import APPLICATIONS, EXPECTED, build
from ._openai_stub import OpenAIStub
from .conftest import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ONE_ROW = {t: {c: v[:1] for c, v in cols.items()} for t, cols in APPLICATIONS.items()}
INFER = "/v2/models/loan_advice/infer"


@pytest.fixture(scope="module")
def quick_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loan pipeline giving up sooner: a 1 s timeout and one retry (two attempts)."""
    folder = tmp_path_factory.mktemp("quick")
    return build("1.0.1", timeout=1.0, retries=1).export(folder, created_by="test")


@pytest.fixture()
def served(quick_bundle: Path, stub: OpenAIStub, tmp_path: Path) -> Iterator[str]:
    """``shipyard serve --bundle`` of ``quick_bundle``, its endpoint the stub; its base URL."""
    env = {
        "SHIPYARD_LLM_BASE_URL": stub.base_url,
        "SHIPYARD_LLM_API_KEY": API_KEY,
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }
    with serve_process(["--bundle", str(quick_bundle)], env) as (base, _):
        yield base


def _infer_body(data: dict[str, Any]) -> dict[str, Any]:
    columns = data["applications"]
    inputs = []
    for name, values in columns.items():
        kind = "FP64" if isinstance(values[0], float) else "BYTES"
        inputs.append({"name": name, "shape": [len(values)], "datatype": kind, "data": values})
    return {"inputs": inputs}


@pytest.mark.parametrize(
    ("fault", "times", "reason"),
    [
        ("500", 2, "answered 500 (2 attempts)"),
        ("hang", 2, "did not answer within 1 s (2 attempts)"),
        ("malformed", 1, "sent something that is not a chat completion"),
    ],
)
def test_a_failing_endpoint_is_a_bad_gateway_naming_the_node_and_no_secret(
    served: str, stub: OpenAIStub, fault: str, times: int, reason: str
) -> None:
    stub.fail_next(fault, times=times)
    response = httpx.post(served + predict_path("loan_advice"), json=ONE_ROW, timeout=60)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "EndpointError"
    assert body["node"] == "answer" and body["reason"] == reason
    assert body["message"] == f"llm 'answer' failed: its language model endpoint {reason}"
    # The endpoint's address and key are the server's business, not the client's.
    assert stub.base_url not in response.text and API_KEY not in response.text
    assert response.headers["x-request-id"] == body["request_id"]
    # The endpoint is back: the same server answers the next request.
    again = httpx.post(served + predict_path("loan_advice"), json=ONE_ROW, timeout=60)
    assert again.status_code == 200 and again.json()["decision"]["values"] == EXPECTED[:1]


def test_the_inference_protocol_route_answers_a_bad_gateway_in_its_own_style(
    served: str, stub: OpenAIStub
) -> None:
    stub.fail_next("429", retry_after="3600")  # longer than a minute: given up at once
    response = httpx.post(served + INFER, json=_infer_body(ONE_ROW), timeout=60)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["kind"] == "EndpointError" and body["node"] == "answer"
    assert body["error"].startswith("llm 'answer' failed: its language model endpoint answered 429")
    assert len(stub.chat_requests()) == 1
