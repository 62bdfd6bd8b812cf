"""Versions side by side: an A/B split's versions, or a live version and its shadow.

From the capture: requests and rows per version, latency percentiles (each live answer's
``latency_ms``), the distance between each version's outputs and the primary's
(Kolmogorov-Smirnov for numbers, Jensen-Shannon for categories, each with a p-value),
and for a shadow the agreement with the live answer to the same rows. From the serving
``/metrics`` text, when given: requests answered and the error rate (answers that were
not 2xx) per version, counted over every request, not a sample. From late labels, when
given: each version's performance. Each difference from the primary carries a p-value
(Fisher's exact test for shares, Mann-Whitney U for latencies and absolute errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import _captures, _feedback, _stats

PERCENTILES = (50, 95, 99)
NUMERIC_TOLERANCE = 1e-6  # two numeric answers agree when within this share of the larger


@dataclass
class VersionSide:
    """One version's figures; ``vs_primary`` holds each difference and its p-value."""

    version: str
    role: str  # live or shadow
    weight: float | None = None  # its share of live traffic, from the traffic setting
    requests: int = 0
    rows: int = 0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    answered: int | None = None  # from /metrics
    error_rate: float | None = None
    performance: dict[str, Any] | None = None
    vs_primary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    """The versions of one model in one environment, the primary first."""

    model: str
    primary: str
    versions: list[VersionSide]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "primary": self.primary,
            "versions": [dict(vars(v)) for v in self.versions],
        }


def parse_metrics(text: str, model: str) -> dict[str, tuple[int, int]]:
    """``{version: (answered, errors)}`` from the Prometheus text of a serving ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, list[int]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "shipyard_requests":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") or sample.labels.get("model") != model:
                continue
            counts = found.setdefault(sample.labels["version"], [0, 0])
            counts[0] += int(sample.value)
            if not sample.labels.get("status", "200").startswith("2"):
                counts[1] += int(sample.value)
    return {version: (c[0], c[1]) for version, c in found.items()}


def _per_request_latency(table: Any) -> np.ndarray:
    if "latency_ms" not in table.column_names:
        return np.array([], dtype=np.float64)
    seen: dict[str, float] = {}
    for rid, ms in zip(
        table.column("request_id").to_pylist(), table.column("latency_ms").to_pylist(), strict=True
    ):
        if ms is not None and rid not in seen:
            seen[rid] = float(ms)
    return np.array(list(seen.values()), dtype=np.float64)


def _output_kind(table: Any, name: str) -> str:
    import pyarrow as pa

    kind = table.schema.field(name).type
    return "numeric" if pa.types.is_integer(kind) or pa.types.is_floating(kind) else "categorical"


def _distance(a: Any, b: Any, kind: str) -> dict[str, Any]:
    left, right = _captures.values(a, kind), _captures.values(b, kind)
    if len(left) == 0 or len(right) == 0:
        return {"test": None}
    if kind == "numeric":
        found = _stats.two_sample(left, right)
        return {"test": "ks", "distance": found.score, "p_value": found.p_value}
    names = sorted(set(left.tolist()) | set(right.tolist()))
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((2, len(names)))
    for row, sample in enumerate((left, right)):
        for value in sample.tolist():
            counts[row, index[value]] += 1
    distance = _stats.jensen_shannon(counts[0], counts[1])
    test = _stats.category_test(names, counts[0], counts[1])
    return {"test": "js", "distance": distance.score, "p_value": test.p_value}


def _agreement(live: Any, shadow: Any, outputs: Sequence[str]) -> dict[str, Any]:
    """Per output, the share of rows where the shadow gave the live answer."""
    if "row" not in live.column_names or "row" not in shadow.column_names:
        return {}
    keys = list(
        zip(live.column("request_id").to_pylist(), live.column("row").to_pylist(), strict=True)
    )
    where = {key: i for i, key in enumerate(keys)}
    pairs = [
        (where[key], j)
        for j, key in enumerate(
            zip(
                shadow.column("request_id").to_pylist(),
                shadow.column("row").to_pylist(),
                strict=True,
            )
        )
        if key in where
    ]
    found: dict[str, Any] = {"rows": len(pairs)}
    if not pairs:
        return found
    left, right = (np.array(side) for side in zip(*pairs, strict=True))
    for name in outputs:
        if name not in shadow.column_names:
            continue
        a = np.array(live.column(name).to_pylist(), dtype=object)[left]
        b = np.array(shadow.column(name).to_pylist(), dtype=object)[right]
        if _output_kind(live, name) == "numeric":
            x, y = a.astype(np.float64), b.astype(np.float64)
            same = np.abs(x - y) <= NUMERIC_TOLERANCE * np.maximum(np.abs(x), np.abs(y))
            found[name.removeprefix("output.")] = {
                "agreement": float(same.mean()),
                "mean_abs_diff": float(np.abs(x - y).mean()),
            }
        else:
            found[name.removeprefix("output.")] = {"agreement": float((a == b).mean())}
    return found


def compare(
    folder: Path,
    model: str,
    *,
    primary: str | None = None,
    weights: dict[str, float] | None = None,
    since: Any = None,
    until: Any = None,
    metrics_text: str | None = None,
    labels: dict[str, Any] | None = None,
) -> Comparison:
    """Compare the captured versions of ``model`` (see the module's docstring).

    ``primary`` is the version the others are compared with (default: the one with the
    most live requests). ``weights`` are the traffic setting's shares (for display).
    ``labels``: the keyword arguments of ``_feedback.evaluate`` past ``windows`` (path,
    id and label column, and its options). Raises UsageError when nothing was captured.
    """
    found = {
        version: next(
            iter(_captures.windows(folder, model, version, since=since, until=until)), None
        )
        for _, version in _captures.captured_versions(folder, model)
    }
    tables = {v: w for v, w in found.items() if w is not None}
    if not tables:
        raise UsageError(f"no captured requests of {model} in {folder}")
    sides: dict[str, VersionSide] = {}
    for version, window in tables.items():
        live = window.live().table
        role = "live" if live.num_rows else "shadow"
        table = live if live.num_rows else window.table
        side = VersionSide(version, role, (weights or {}).get(version))
        side.rows = table.num_rows
        side.requests = len(set(table.column("request_id").to_pylist()))
        latency = _per_request_latency(table)
        side.latency_ms = {
            f"p{q}": float(np.percentile(latency, q)) if latency.size else None for q in PERCENTILES
        }
        sides[version] = side
    lives = [s for s in sides.values() if s.role == "live"]
    if primary is None:
        primary = max(lives or list(sides.values()), key=lambda s: s.requests).version
    if primary not in sides:
        raise UsageError(
            f"--primary {primary}: no captured requests of that version "
            f"(captured: {', '.join(sorted(sides))})"
        )
    if metrics_text is not None:
        counts = parse_metrics(metrics_text, model)
        for version, side in sides.items():
            if version in counts and side.role == "live":
                side.answered, errors = counts[version]
                side.error_rate = errors / side.answered if side.answered else None
    if labels is not None:
        for version, window in tables.items():
            side = sides[version]
            report = _feedback.evaluate(
                [window], model=model, live_only=side.role == "live", **labels
            )
            side.performance = {
                "matched": report.matched,
                "task": report.task,
                **(report.versions[0] if report.versions else {}),
            }
    base = tables[primary]
    base_table = base.live().table if sides[primary].role == "live" else base.table
    outputs = [c for c in base_table.column_names if c.startswith("output.")]
    for version, side in sides.items():
        if version == primary:
            continue
        other = tables[version]
        other_table = other.live().table if side.role == "live" else other.table
        for name in outputs:
            if name in other_table.column_names:
                side.vs_primary[name.removeprefix("output.")] = _distance(
                    base_table.column(name),
                    other_table.column(name),
                    _output_kind(base_table, name),
                )
        side.vs_primary["latency"] = _latency_test(base_table, other_table)
        if side.role == "shadow":
            side.vs_primary["agreement"] = _agreement(base_table, other_table, outputs)
        mine, theirs = sides[primary], side
        if mine.answered is not None and theirs.answered is not None:
            test = _stats.proportions(
                round((mine.error_rate or 0) * mine.answered),
                mine.answered,
                round((theirs.error_rate or 0) * theirs.answered),
                theirs.answered,
            )
            side.vs_primary["error_rate"] = {"p_value": test.p_value}
        if mine.performance and theirs.performance:
            side.vs_primary["performance"] = _performance_test(mine.performance, theirs.performance)
    ordered = [sides[primary], *(s for v, s in sorted(sides.items()) if v != primary)]
    return Comparison(model, primary, ordered)


def _latency_test(a: Any, b: Any) -> dict[str, Any]:
    test = _stats.location(_per_request_latency(a), _per_request_latency(b))
    return {"test": "mannwhitney", "p_value": test.p_value}


def _performance_test(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if "accuracy" in a and "accuracy" in b and a.get("rows") and b.get("rows"):
        test = _stats.proportions(
            round(a["accuracy"] * a["rows"]), a["rows"], round(b["accuracy"] * b["rows"]), b["rows"]
        )
        return {
            "metric": "accuracy",
            "difference": b["accuracy"] - a["accuracy"],
            "p_value": test.p_value,
        }
    if "mae" in a and "mae" in b:
        return {"metric": "mae", "difference": b["mae"] - a["mae"], "p_value": None}
    return {}
