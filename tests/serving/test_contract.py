"""The served OpenAPI document is a contract: schemathesis holds every operation to it.

A bounded, seeded schemathesis run (its engine, as ``st run`` drives it) over real HTTP:
the toy models (a float table; strings, ints and lists) served as ``shipyard serve``
serves them, every operation of their /openapi.json driven with its examples, the
coverage phase's boundary and invalid values, and a few fuzzed cases. Whatever is sent,
the server answers no 5xx, and each answer has a status, content type, headers and body
its operation documents. The demo model is left out: its scikit-learn pipeline overflows
on floats near 1e308, which its schema allows (a model failing is a 500 by design); so is
the fragile model, which fails on purpose.

Run ``st run http://HOST:PORT/openapi.json`` against any server for the full attack.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from shipyard.serving import ModelRunner, ServingApp, bundle_table

from .conftest import guarded_server

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
EXAMPLES = 15  # fuzzed cases per operation, beyond the coverage phase's (about 150 each)


@pytest.fixture(scope="module")
def contract_server(toy_runners: dict[str, ModelRunner]) -> Iterator[str]:
    app = ServingApp(bundle_table([toy_runners["frame"], toy_runners["tensors"]]), seed=1)
    with guarded_server(app) as base:
        yield base


def _config(base: str) -> Any:
    enabled = "\n".join(f"{name}.enabled = true" for name in CHECKS)
    return schemathesis.Config.from_str(
        f"""
seed = 1
base-url = "{base}"
workers = 1
request-timeout = 30
[generation]
max-examples = {EXAMPLES}
deterministic = true
database = "none"
[checks]
enabled = false
{enabled}
"""
    )


def test_every_operation_keeps_to_its_documented_contract(contract_server: str) -> None:
    document = httpx.get(f"{contract_server}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document, config=_config(contract_server))
    statuses: Counter[int] = Counter()
    tested: set[str] = set()
    broken: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            broken.append(f"schemathesis could not run: {event}")
        if not isinstance(event, events.ScenarioFinished) or event.status == Status.SKIP:
            continue
        recorder = event.recorder
        tested.add(recorder.label)
        for interaction in recorder.interactions.values():
            if interaction.response is not None:
                statuses[interaction.response.status_code] += 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status == Status.FAILURE:
                    case = recorder.cases[case_id].value
                    broken.append(f"{recorder.label}: {check.name}\n    {case.as_curl_command()}")
    operations = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    assert operations <= tested, f"untested: {sorted(operations - tested)}"
    assert sum(statuses.values()) > 50 * len(operations), statuses  # the run really ran
    assert not broken, "\n".join(dict.fromkeys(broken))
    assert not [status for status in statuses if status >= 500], statuses
