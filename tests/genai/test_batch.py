"""Batch scoring through the endpoint: calls are bounded per node, and the progress a run
reports counts them while a chunk is still being scored."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from shipyard.batch import BatchOptions, Progress, run_local
from shipyard.cli._progress import progress_bar
from shipyard.runtime import Endpoint

from ._loans import APPLICATIONS, EXPECTED, underwriter
from ._openai_stub import OpenAIStub
from .conftest import API_KEY

pytestmark = pytest.mark.integration

GATE_LIMIT = 30.0  # a gate never opened fails the test instead of hanging it


def applications_file(folder: Path, copies: int) -> Path:
    columns = APPLICATIONS["applications"]
    rows = [dict(zip(columns, v, strict=True)) for v in zip(*columns.values(), strict=True)]
    path = folder / "applications.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * copies))
    return path


def test_progress_counts_the_calls_of_a_chunk_before_the_chunk_is_done(
    loan_bundle: Path, tmp_path: Path
) -> None:
    seen_early = threading.Event()

    def gated(body: dict[str, Any]) -> str:
        # Only the first call answers at once; the others wait until the run has reported
        # progress that counts it, in the middle of its only chunk.
        if gated.answered and not seen_early.wait(GATE_LIMIT):
            raise AssertionError("no progress was reported while the chunk was scored")
        gated.answered = True
        return underwriter(body)

    gated.answered = False  # type: ignore[attr-defined]
    reports: list[Progress] = []

    def report(progress: Progress) -> None:
        reports.append(progress)
        if progress.rows == 0 and progress.llm_calls >= 1:
            seen_early.set()

    with OpenAIStub(api_key=API_KEY, answer=gated) as stub:
        result = run_local(
            str(loan_bundle),
            str(applications_file(tmp_path, 2)),
            str(tmp_path / "decisions.parquet"),
            BatchOptions(endpoint=Endpoint(stub.base_url, API_KEY, concurrency=1)),
            on_progress=report,
        )
    assert result.scored == 8
    early = [p for p in reports if p.rows == 0]
    assert early and all(1 <= p.llm_calls < 8 for p in early)
    assert (reports[-1].rows, reports[-1].llm_calls) == (8, 8)


def test_a_chunks_calls_are_bounded_by_the_endpoints_concurrency(
    loan_bundle: Path, stub: OpenAIStub, tmp_path: Path
) -> None:
    stub.hold_for = 3  # each answer waits (bounded) until three calls are in flight
    result = run_local(
        str(loan_bundle),
        str(applications_file(tmp_path, 3)),
        str(tmp_path / "decisions.jsonl"),
        BatchOptions(endpoint=Endpoint(stub.base_url, API_KEY, concurrency=3)),
    )
    assert result.scored == 12 and stub.max_in_flight == 3
    lines = Path(result.output).read_text().splitlines()
    decisions = [json.loads(line)["decision"] for line in lines]
    assert decisions == EXPECTED * 3


def test_worker_processes_add_their_calls_to_the_runs_count(
    loan_bundle: Path, stub: OpenAIStub, tmp_path: Path
) -> None:
    reports: list[Progress] = []
    result = run_local(
        str(loan_bundle),
        str(applications_file(tmp_path, 4)),
        str(tmp_path / "decisions.parquet"),
        BatchOptions(endpoint=Endpoint(stub.base_url, API_KEY), workers=2, chunk_rows=4),
        on_progress=reports.append,
    )
    assert result.scored == 16 and len(stub.chat_requests()) == 16
    assert (reports[-1].rows, reports[-1].llm_calls) == (16, 16)
    calls = [json.loads(line) for line in Path(result.llm_calls or "").read_text().splitlines()]
    assert [c["_row"] for c in calls] == list(range(16))


def test_the_progress_bar_shows_the_llm_calls() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    with progress_bar(console, "scoring applications.csv") as update:
        update(Progress(rows=0, rejected=0, fraction=0.1, seconds=1.0, llm_calls=1234))
    assert "1,234 llm calls" in out.getvalue()
