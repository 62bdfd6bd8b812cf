"""The demo's GenAI step: a policy-grounded loan decision through a local stand-in endpoint.

No language model is reachable from where the demo runs, so the step starts a stand-in
on 127.0.0.1 that speaks the OpenAI chat completions protocol and answers the prompt by
reading the application's ratio and purpose out of it: it shows the plumbing (retrieve,
prompt, llm with locked settings, schema check, rule), not a model's judgement. Set
SHIPYARD_LLM_BASE_URL (and SHIPYARD_LLM_API_KEY) to a real endpoint and the same bundle
runs against it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from ..errors import ShipyardError
from ..pipeline import (
    Column,
    Pipeline,
    Table,
    feature,
    knowledge,
    llm,
    parse_answer,
    prompt,
    retrieve,
    rule,
)
from ..runtime import Artifact

# The policy the tests retrieve from too; the demo runs from a checkout (make demo).
POLICY = Path(__file__).resolve().parents[3] / "examples" / "genai" / "policy.md"
MODEL = "local-stand-in"

SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "refer", "decline"]},
        "reason": {"type": "string", "minLength": 1},
    },
    "required": ["decision", "reason"],
}
FALLBACK = {"decision": "refer", "reason": "the model's answer could not be used"}
SYSTEM = """You are an underwriter. Decide by the policy below only.
Answer with JSON: {"decision": "approve" | "refer" | "decline", "reason": "..."}.

Policy:
{{ passages }}"""
USER = """Application: purpose {{ purpose }}; employment {{ employment }};
debt-to-income ratio {{ "%.2f" | format(ratio) }}."""
REQUEST: dict[str, dict[str, list[Any]]] = {
    "applications": {
        "purpose": ["car", "education"],
        "employment": ["salaried", "probation"],
        "income": [4000.0, 3000.0],
        "monthly_debt": [800.0, 1200.0],
    }
}


def ratio(monthly_debt: np.ndarray, income: np.ndarray) -> np.ndarray:
    """Monthly debt payments over monthly income."""
    return monthly_debt / income


def query(purpose: np.ndarray, employment: np.ndarray) -> list[str]:
    """What to look up in the policy for an application."""
    return [f"{p} {e} debt to income" for p, e in zip(purpose, employment, strict=True)]


def decision(checked: np.ndarray) -> list[str]:
    """The decision the checked answer (or its fallback) carries."""
    return [json.loads(c)["value"]["decision"] for c in checked]


def build_genai_pipeline() -> Pipeline:
    """retrieve (policy.md) -> chat prompt -> llm (seed 7, temperature 0) -> schema -> rule."""
    if not POLICY.exists():
        raise ShipyardError(f"the GenAI demo reads {POLICY}: run it from a Shipyard checkout")
    table = Table(
        "applications",
        [
            Column("purpose", "string"),
            Column("employment", "string"),
            Column("income", "float64", min=0.01),
            Column("monthly_debt", "float64", min=0.0),
        ],
    )
    return Pipeline(
        "loan_advice",
        "1.0.0",
        inputs=[table],
        description="Policy-grounded loan decisions by a language model",
        nodes=[
            feature(ratio),
            feature(query, dtype="string"),
            knowledge("policy", files=[POLICY], chunk=60),
            retrieve("passages", knowledge="policy", query="query", top_k=3),
            prompt(
                "underwriting",
                {"system": SYSTEM, "user": USER},
                variables={
                    "passages": "passages",
                    "purpose": "applications.purpose",
                    "employment": "applications.employment",
                    "ratio": "ratio",
                },
            ),
            llm(
                "answer",
                prompt="underwriting",
                model=MODEL,
                seed=7,
                temperature=0.0,
                top_k=1,
                max_tokens=128,
                response_format={"type": "json_object"},
                timeout=10.0,
            ),
            parse_answer("checked", answer="answer", schema=SCHEMA, fallback=FALLBACK),
            rule(decision),
        ],
        outputs=["decision", "checked"],
    )


_RATIO = re.compile(r"debt-to-income ratio (\d+(?:\.\d+)?)")


def stand_in_answer(messages: list[dict[str, Any]]) -> str:
    """The stand-in's reply to the underwriting prompt: the policy's thresholds, applied."""
    system, user = messages[0]["content"], messages[-1]["content"]
    found = _RATIO.search(user)
    if found is None:
        return "I only read loan applications."
    value = float(found.group(1))
    if "probation" in user and "probation" in system:
        return json.dumps({"decision": "refer", "reason": "Employment: probation period"})
    if value > 0.5:
        return json.dumps({"decision": "decline", "reason": "Debt to income above 0.50"})
    if value >= 0.35:
        return json.dumps({"decision": "refer", "reason": "Debt to income 0.35 to 0.50"})
    return json.dumps({"decision": "approve", "reason": "Debt to income below 0.35"})


class _StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path != "/v1/chat/completions" or not isinstance(body.get("messages"), list):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        content = stand_in_answer(body["messages"])
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        tokens = len(content.split())
        self._send(
            200,
            {
                "id": "chatcmpl-demo",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [choice],
                "usage": {"prompt_tokens": 0, "completion_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _send(self, status: int, document: Any) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def stand_in_endpoint() -> Iterator[str]:
    """The stand-in on a free loopback port, for as long as the block runs: its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def genai_step(workdir: Path, console: Console) -> dict[str, Any]:
    """Export the GenAI bundle, extract its prompt and LLM settings, answer one request.

    The request runs through the bundle's own entry point in a subprocess, against the
    local stand-in endpoint. Returns the answer. Raises ShipyardError when a step fails.
    """
    bundle = build_genai_pipeline().export(workdir / "dist")
    artifact = Artifact(bundle)
    report = artifact.verify()
    console.print(f"bundle: {bundle} ({report['files']} files match MANIFEST.json)")
    parts = workdir / "genai"
    for node in ("underwriting", "answer"):
        console.print(f"[dim]$ shipyard artifact extract {bundle.name} {node} -o {parts / node}[/]")
        for path in artifact.extract(node, parts / node):
            console.print(f"[bold]{path}[/]", highlight=False)
            console.print(path.read_text(), markup=False, highlight=False)
    production = workdir / "genai" / "production"
    artifact.extract(None, production)
    console.print(
        "[yellow]The endpoint below is a local stand-in written for this demo[/], not a "
        "language model: it speaks the OpenAI chat completions protocol on 127.0.0.1 and "
        "applies the policy's thresholds. Point SHIPYARD_LLM_BASE_URL at a real endpoint "
        "and the same bundle calls it."
    )
    with stand_in_endpoint() as base_url:
        keys = ("SHIPYARD_LLM_API_KEY", "SHIPYARD_LLM_API_KEY_FILE")
        env = {k: v for k, v in os.environ.items() if k not in keys}
        env["SHIPYARD_LLM_BASE_URL"] = base_url  # the stand-in needs no key: none is sent
        console.print(
            f"$ SHIPYARD_LLM_BASE_URL={base_url} python -m {artifact.package}.python_dict"
            " < request.json"
        )
        done = subprocess.run(
            [sys.executable, "-m", f"{artifact.package}.python_dict"],
            input=json.dumps(REQUEST),
            capture_output=True,
            text=True,
            cwd=production,
            env=env,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise ShipyardError(f"the GenAI bundle failed: {done.stderr.strip()}")
    answer: dict[str, Any] = json.loads(done.stdout)
    for i, checked in enumerate(answer["checked"]["values"]):
        outcome = json.loads(checked)
        purpose = REQUEST["applications"]["purpose"][i]
        console.print(
            f"application {i} ({purpose}): {answer['decision']['values'][i]}: "
            f"{outcome['value']['reason']} (answer {'valid' if outcome['valid'] else 'fell back'})"
        )
    return answer
