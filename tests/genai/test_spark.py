"""The Spark engine on a GenAI pipeline: its workers call the run's endpoint, and it writes
the llm call records the local engine writes, beside an output in input order.

Real PySpark in local mode (the session of tests/conftest.py, whose Python workers were
started before any test set an SHIPYARD_LLM_* variable: only the endpoint the run sends
reaches them) and the loopback stub.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from shipyard.batch import BatchOptions, run_local, run_spark
from shipyard.registry import Registry
from shipyard.runtime import Endpoint
from tests.cli.test_cli import run_cli

from ._loans import APPLICATIONS, EXPECTED
from ._openai_stub import OpenAIStub
from .conftest import API_KEY
from .test_endpoint_config import KEY_VARIABLE, host_env, llm_config

pytestmark = [pytest.mark.slow, pytest.mark.integration]

COPIES = 6
OUT_OF_RANGE = 5  # income 0: rejected before anything is called
UNREADABLE = 10  # one field too many: rejected, and never scored on either engine
TIMING = ("latency_ms",)  # what may differ between two runs of the same calls


def applications_csv(folder: Path) -> Path:
    """COPIES x the four applications with an ``id``; one out of range, one unreadable."""
    columns = APPLICATIONS["applications"]
    rows = [list(v) for v in zip(*columns.values(), strict=True)] * COPIES
    path = folder / "applications.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *columns])
        for number, row in enumerate(rows):
            fields = [f"A-{number:04d}", *row]
            if number == OUT_OF_RANGE:
                fields[3] = 0.0
            if number == UNREADABLE:
                fields.append("extra")
            writer.writerow(fields)
    return path


def part_lines(folder: Path) -> list[dict[str, Any]]:
    """The JSON Lines of a folder of part files, in part order."""
    parts = sorted(folder.glob("part-*"))
    return [json.loads(line) for part in parts for line in part.read_text().splitlines()]


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_both_engines_write_the_same_call_records_and_spark_keeps_the_input_order(
    spark: Any, loan_bundle: Path, stub: OpenAIStub, tmp_path: Path
) -> None:
    source = applications_csv(tmp_path)
    options = BatchOptions(id_column="id", endpoint=Endpoint(stub.base_url, API_KEY))
    local = run_local(str(loan_bundle), str(source), str(tmp_path / "local.jsonl"), options)
    local_calls = len(stub.chat_requests())
    spark.conf.set("spark.sql.files.maxPartitionBytes", "512")  # several partitions
    try:
        result = run_spark(
            loan_bundle, str(source), str(tmp_path / "spark.jsonl"), options, spark=spark
        )
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    rows = 4 * COPIES
    assert (result.rows, result.scored, result.rejected) == (rows, rows - 2, 2)
    assert (local.rows, local.scored, local.rejected) == (rows, rows - 2, 2)
    # Every scored row made exactly one call on each engine; the two rejects made none.
    assert local_calls == rows - 2 and len(stub.chat_requests()) == 2 * (rows - 2)
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in stub.chat_requests())

    assert result.llm_calls == str(tmp_path / "spark.jsonl.llm_calls.jsonl")
    spark_records = part_lines(Path(result.llm_calls))
    local_records = [
        json.loads(line) for line in Path(local.llm_calls or "").read_text().splitlines()
    ]
    assert without_timing(spark_records) == without_timing(local_records)
    skipped = {f"A-{OUT_OF_RANGE:04d}", f"A-{UNREADABLE:04d}"}
    assert [r["id"] for r in spark_records] == [
        f"A-{n:04d}" for n in range(rows) if f"A-{n:04d}" not in skipped
    ]
    first = spark_records[0]
    assert list(first)[:3] == ["id", "_row", "node"] and first["node"] == "answer"
    assert first["endpoint"] == stub.base_url and first["model"] == "stub-chat-1"
    assert first["settings"]["seed"] == 7 and first["usage"]["total_tokens"] > 0
    assert all(r["latency_ms"] >= 0 for r in spark_records)
    text = "".join(p.read_text() for p in Path(result.llm_calls).glob("part-*"))
    assert API_KEY not in text

    # The output: the local engine's rows, in the same (input) order, without the records.
    got = part_lines(tmp_path / "spark.jsonl")
    want = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert got == want and list(got[0]) == ["id", "decision", "checked"]
    assert [r["decision"] for r in got[:4]] == EXPECTED
    assert not list(tmp_path.glob(".*.partial"))


def test_batch_run_on_spark_calls_the_endpoint_the_environment_config_names(
    spark: Any,
    loans: Registry,
    database_url: str,
    tmp_path: Path,
    stub: OpenAIStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loans.set_environment_config("loans", "uat", llm_config(stub))
    for name, value in host_env(database_url, tmp_path, **{KEY_VARIABLE: API_KEY}).items():
        monkeypatch.setenv(name, value)
    source = applications_csv(tmp_path)
    output = tmp_path / "decisions.parquet"
    code, out, err = run_cli(
        capsys,
        *("batch", "run", "--project", "loans", "--env", "uat", "--model", "loan_advice"),
        *("--input", str(source), "--output", str(output), "--id-column", "id"),
        *("--engine", "spark", "--json"),
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["engine"], result["scored"], result["rejected"]) == ("spark", 22, 2)
    decisions = ds.dataset(output, format="parquet").to_table().column("decision").to_pylist()
    assert decisions[:4] == EXPECTED
    assert len(stub.chat_requests()) == 22  # the stub refuses a call without the key
    records = part_lines(Path(result["llm_calls"]))
    assert len(records) == 22 and {r["endpoint"] for r in records} == {stub.base_url}
    assert API_KEY not in out + err


def test_a_bundle_whose_spark_runtime_cannot_record_calls_is_refused() -> None:
    import inspect
    import types

    from shipyard.batch import _spark_engine
    from shipyard.errors import UsageError

    def old(executor: Any, package: str, tables: Any, outputs: Any = None, passthrough: Any = (),
            rejects: Any = None, *, app_config: Any = None) -> Any:  # fmt: skip
        raise AssertionError("an old runtime must not be asked to score")

    runtime = types.SimpleNamespace(score_dataframes=old)
    assert "llm_calls" not in inspect.signature(old).parameters
    with pytest.raises(UsageError, match="before Spark scoring could record llm calls"):
        _spark_engine.score_with_rejects(
            runtime, None, "loan_advice_1_0_0", "applications", None, None, ["_row"],
            calls_llm=True,
        )  # fmt: skip


def test_the_drivers_own_endpoint_variables_reach_workers_started_before_they_were_set(
    spark: Any, loan_bundle: Path, endpoint: OpenAIStub, tmp_path: Path
) -> None:
    # ``endpoint`` sets SHIPYARD_LLM_BASE_URL and the key in this (the driver's) process
    # only: the session's Python workers were started without them.
    result = run_spark(
        loan_bundle, str(applications_csv(tmp_path)), str(tmp_path / "out.jsonl"), spark=spark
    )
    assert result.scored == 4 * COPIES - 2
    assert len(endpoint.chat_requests()) == result.scored
    assert {r["endpoint"] for r in part_lines(Path(result.llm_calls or ""))} == {endpoint.base_url}
