"""The GenAI test pipeline: policy passages -> chat prompt -> llm -> JSON check -> decision.

It retrieves from the knowledge file the repository ships (examples/genai/policy.md),
and ``underwriter`` is what the loopback stub answers in its place: a deterministic
reading of the prompt, so that a test can say which decision each row gets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

import shipyard as sy

POLICY = Path(__file__).resolve().parents[2] / "examples" / "genai" / "policy.md"

SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "refer", "decline"]},
        "reason": {"type": "string", "minLength": 1},
    },
    "required": ["decision", "reason"],
    "additionalProperties": False,
}
FALLBACK = {"decision": "refer", "reason": "the model's answer could not be used"}

SYSTEM = """You are an underwriter. Decide by the policy below only.
Answer with JSON: {"decision": "approve" | "refer" | "decline", "reason": "..."}.

Policy:
{{ passages }}"""

USER = """Application: purpose {{ purpose }}; employment {{ employment }};
debt-to-income ratio {{ "%.2f" | format(ratio) }}."""

APPLICATIONS = {
    "applications": {
        "purpose": ["car", "education", "gambling", "home improvement"],
        "employment": ["salaried", "probation", "salaried", "self-employed"],
        "income": [4000.0, 3000.0, 5000.0, 2000.0],
        "monthly_debt": [800.0, 600.0, 500.0, 1400.0],
    }
}
EXPECTED = ["approve", "refer", "decline", "decline"]


def ratio(monthly_debt: np.ndarray, income: np.ndarray) -> np.ndarray:
    """Monthly debt payments over monthly income."""
    return monthly_debt / income


def query(purpose: np.ndarray, employment: np.ndarray) -> list[str]:
    """What to look up in the policy for an application."""
    return [f"{p} {e} debt to income" for p, e in zip(purpose, employment, strict=True)]


def decision(checked: np.ndarray) -> list[str]:
    """The decision the checked answer (or its fallback) carries."""
    return [json.loads(c)["value"]["decision"] for c in checked]


def build(version: str = "1.0.0", system: str = SYSTEM, **llm_options: Any) -> sy.Pipeline:
    table = sy.Table(
        "applications",
        [
            sy.Column("purpose", "string"),
            sy.Column("employment", "string"),
            sy.Column("income", "float64", min=0.01),
            sy.Column("monthly_debt", "float64", min=0.0),
        ],
    )
    settings: dict[str, Any] = {
        "model": "stub-chat-1",
        "seed": 7,
        "temperature": 0.0,
        "top_k": 1,
        "max_tokens": 64,
        "response_format": {"type": "json_object"},
        "timeout": 5.0,
        "retries": 2,
    }
    settings.update(llm_options)
    return sy.Pipeline(
        "loan_advice",
        version,
        inputs=[table],
        description="Policy-grounded loan decisions by a language model",
        nodes=[
            sy.feature(ratio),
            sy.feature(query, dtype="string"),
            sy.knowledge("policy", files=[POLICY], chunk=60),
            sy.retrieve("passages", knowledge="policy", query="query", top_k=3),
            sy.prompt(
                "underwriting",
                {"system": system, "user": USER},
                variables={
                    "passages": "passages",
                    "purpose": "applications.purpose",
                    "employment": "applications.employment",
                    "ratio": "ratio",
                },
            ),
            sy.llm("answer", prompt="underwriting", **settings),
            sy.parse_answer("checked", answer="answer", schema=SCHEMA, fallback=FALLBACK),
            sy.rule(decision),
        ],
        outputs=["decision", "checked"],
    )


_RATIO = re.compile(r"debt-to-income ratio (\d+\.\d+)")
_PURPOSE = re.compile(r"purpose ([a-z -]+);")


def underwriter(body: dict[str, Any]) -> str:
    """The stub's answer to the underwriting prompt: the policy's rules, applied."""
    user = body["messages"][-1]["content"]
    system = body["messages"][0]["content"]
    found_ratio, found_purpose = _RATIO.search(user), _PURPOSE.search(user)
    if found_ratio is None or found_purpose is None:
        return "I only read loan applications."
    ratio_value, purpose = float(found_ratio.group(1)), found_purpose.group(1)
    if purpose == "gambling" and "gambling" in system:
        return json.dumps({"decision": "decline", "reason": "Loan purpose: gambling"})
    if "probation" in user and "probation" in system:
        return json.dumps({"decision": "refer", "reason": "Employment: probation period"})
    if ratio_value > 0.5:
        return json.dumps({"decision": "decline", "reason": "Debt to income above 0.50"})
    if ratio_value >= 0.35:
        return json.dumps({"decision": "refer", "reason": "Debt to income 0.35 to 0.50"})
    return json.dumps({"decision": "approve", "reason": "Debt to income below 0.35"})
