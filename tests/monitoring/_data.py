"""A small scoring pipeline with known distributions, and drift made on purpose.

Table ``loans``: ``income`` ~ N(50, 10), ``age`` ~ N(40, 8) and ``region`` one of north,
south, east, west (40/30/20/10 %). The model's ``p_default`` is a logistic function of
income and age; the rule ``decision`` says ``decline`` above 0.5, else ``approve``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import Column, Pipeline, Table, model, rule
from shipyard.serving import Capture, CaptureRecord, Metrics, ParquetFolder

REGIONS = ("north", "south", "east", "west")
_SINKS: dict[str, ParquetFolder] = {}
SHARES = (0.4, 0.3, 0.2, 0.1)


def score(x: Any) -> Any:
    """The probability of default: falls with income, rises with age."""
    return 1.0 / (1.0 + np.exp(0.15 * (x[:, 0] - 50.0) - 0.05 * (x[:, 1] - 40.0)))


def cautious_score(x: Any) -> Any:
    """A challenger: the same model, more wary of low incomes (its answers differ)."""
    return 1.0 / (1.0 + np.exp(0.15 * (x[:, 0] - 55.0) - 0.05 * (x[:, 1] - 40.0)))


def decide(p_default: Any) -> Any:
    """decline above 0.5, else approve."""
    return np.where(p_default > 0.5, "decline", "approve").astype(object)


decision = rule(decide, name="decision")


def pipeline(version: str = "1.0.0", scorer: Any = score) -> Pipeline:
    table = Table(
        "loans",
        [Column("income", "float64"), Column("age", "float64"), Column("region", "string")],
    )
    return Pipeline(
        "loan_risk",
        version,
        inputs=[table],
        nodes=[model("p_default", scorer, features=["loans.income", "loans.age"]), decision],
        outputs=["p_default", "decision"],
    )


def rows(
    count: int,
    seed: int,
    income_shift: float = 0.0,
    regions: tuple[str, ...] = REGIONS,
    shares: tuple[float, ...] = SHARES,
) -> dict[str, np.ndarray]:
    """``count`` rows of the loans table; ``income_shift`` moves the mean of income."""
    generator = np.random.default_rng(seed)
    return {
        "income": generator.normal(50.0 + income_shift, 10.0, count),
        "age": generator.normal(40.0, 8.0, count),
        "region": generator.choice(np.array(regions, dtype=object), count, p=shares),
    }


def reference(count: int = 4000, seed: int = 1) -> dict[str, Any]:
    data = rows(count, seed)
    return {"loans": {name: values.tolist() for name, values in data.items()}}


def capture(
    folder: Path,
    data: dict[str, np.ndarray],
    version: str = "v1",
    *,
    at: float | None = None,
    request_id: str = "req",
    role: str = "live",
    latency_ms: float = 1.0,
    outputs: dict[str, np.ndarray] | None = None,
    per_request: int = 50,
) -> list[str]:
    """Write ``data`` as serving's capture does (one request per ``per_request`` rows).

    Outputs are computed with the pipeline's own functions unless given. Returns the
    request ids.
    """
    if outputs is None:
        p = score(np.column_stack([data["income"], data["age"]]))
        outputs = {"p_default": p, "decision": decide(p)}
    metrics = Metrics()
    # One writer per folder: its file numbers keep two captures in one second apart.
    sink = _SINKS.setdefault(str(folder), ParquetFolder(folder))
    count = len(data["income"])
    recorder = Capture(
        sink, metrics, rate=1.0, queue_size=count + 1, rows_per_file=10**9, seconds_per_file=3600
    )
    recorder.start()
    ids = []
    moment = time.time() if at is None else at
    for number, start in enumerate(range(0, count, per_request)):
        part = slice(start, start + per_request)
        rid = f"{request_id}-{number}"
        ids.append(rid)
        recorder.offer(
            CaptureRecord(
                "loan_risk",
                version,
                rid,
                moment,
                {
                    "loans.income": ("float64", data["income"][part]),
                    "loans.age": ("float64", data["age"][part]),
                    "loans.region": ("string", data["region"][part]),
                },
                {
                    "p_default": ("float64", outputs["p_default"][part]),
                    "decision": ("string", outputs["decision"][part]),
                },
                role,
                latency_ms,
            )
        )
    recorder.stop()
    assert metrics.captured.labels("loan_risk")._value.get() == count, "capture lost rows"
    return ids
