"""Performance from ground truth that arrives late: labels joined to captured predictions.

A label file (CSV, Parquet or JSON Lines) names each row by an id: the request id serving
answered with (``X-Request-Id``; ``REQUEST#ROW`` for one row of a request of several, rows
counted from 0), or a business id that the request carried as an input column
(``--join-on TABLE.COLUMN``). Labels with no captured prediction are counted and listed,
never dropped in silence; so are ids given twice (the last one counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import _captures

CALIBRATION_BINS = 10
SHOWN_IDS = 10  # unmatched ids listed by name
TASKS = ("auto", "binary", "label", "regression")


def read_labels(path: Path, id_column: str, label_column: str) -> tuple[list[str], list[Any]]:
    """``(ids, labels)`` from a CSV, Parquet or JSON Lines file; UsageError naming a missing
    column or an unknown file type."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix == ".csv":
        options = pcsv.ConvertOptions(column_types={id_column: "string"})
        table = pcsv.read_csv(path, convert_options=options)
    elif suffix in (".parquet", ".pq"):
        table = pq.read_table(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        table = pjson.read_json(path)
    else:
        raise UsageError(f"{path}: labels must be .csv, .parquet or .jsonl, not '{suffix}'")
    for name in (id_column, label_column):
        if name not in table.column_names:
            raise UsageError(
                f"{path} has no column '{name}' (columns: {', '.join(table.column_names)})"
            )
    return [_key(v) for v in table.column(id_column).to_pylist()], table.column(
        label_column
    ).to_pylist()


def _key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Matched:
    """Labelled predictions: per row its version, capture time, label and prediction."""

    versions: np.ndarray
    at: np.ndarray  # microseconds since the epoch
    labels: list[Any]
    predictions: np.ndarray


@dataclass
class Feedback:
    """Performance per version (and per window), and what could not be joined."""

    model: str
    task: str
    prediction: str
    labels: int
    matched: int
    unmatched: int
    unmatched_ids: list[str]
    duplicates: int
    unlabelled: int
    versions: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def join(
    windows: Sequence[_captures.Window],
    ids: Sequence[str],
    labels: Sequence[Any],
    join_on: str,
    prediction: str,
    live_only: bool = True,
) -> tuple[Matched, list[str], int, int]:
    """Labels joined to captured rows: ``(matched, unmatched ids, duplicates, unlabelled)``.

    ``live_only``: only the answers callers got (not a shadow version's).
    """
    by_id: dict[str, Any] = {}
    duplicates = 0
    for key, label in zip(ids, labels, strict=True):
        if key in by_id:
            duplicates += 1
        by_id[key] = label
    seen: set[str] = set()
    versions: list[str] = []
    at: list[int] = []
    found: list[Any] = []
    predicted: list[Any] = []
    captured = 0
    for window in windows:
        table = window.live().table if live_only else window.table
        if prediction not in table.column_names:
            raise UsageError(
                f"the captured requests of {window.model} {window.version} have no output "
                f"'{prediction.removeprefix('output.')}'"
            )
        keys = _row_keys(table, join_on)
        values = table.column(prediction).to_pylist()
        times = table.column("captured_at").cast("int64").to_pylist()
        captured += table.num_rows
        for row, names in enumerate(keys):
            for key in names:
                if key in by_id and key not in seen:
                    seen.add(key)
                    versions.append(window.version)
                    at.append(times[row])
                    found.append(by_id[key])
                    predicted.append(values[row])
                    break
    unmatched = [key for key in by_id if key not in seen]
    matched = Matched(
        np.array(versions, dtype=object), np.array(at, dtype=np.int64), found, np.array(predicted)
    )
    return matched, unmatched, duplicates, captured - len(found)


def _row_keys(table: Any, join_on: str) -> list[tuple[str, ...]]:
    """The ids each captured row answers to."""
    if join_on != "request":
        name = f"input.{join_on}"
        if name not in table.column_names:
            inputs = [
                c.removeprefix("input.") for c in table.column_names if c.startswith("input.")
            ]
            raise UsageError(
                f"--join-on {join_on}: no such captured input (inputs: {', '.join(inputs)})"
            )
        return [(_key(v),) for v in table.column(name).to_pylist()]
    requests = table.column("request_id").to_pylist()
    rows = table.column("row").to_pylist() if "row" in table.column_names else None
    sizes: dict[str, int] = {}
    for rid in requests:
        sizes[rid] = sizes.get(rid, 0) + 1
    keys = []
    for i, rid in enumerate(requests):
        names = [f"{rid}#{rows[i]}"] if rows is not None else []
        if sizes[rid] == 1:
            names.append(rid)
        keys.append(tuple(names))
    return keys


def detect_task(labels: Sequence[Any], predictions: np.ndarray) -> str:
    """``binary`` (probabilities against two classes), ``label`` or ``regression``."""
    numeric = predictions.dtype.kind in "fiu"
    distinct = {v for v in labels if v is not None}
    probabilities = predictions.dtype.kind == "f" and predictions.size > 0
    if (
        probabilities
        and len(distinct) <= 2
        and 0.0 <= predictions.min() <= predictions.max() <= 1.0
    ):
        return "binary"
    if not numeric or all(isinstance(v, str | bool) for v in distinct):
        return "label"
    return "regression"


def positive_labels(labels: Sequence[Any], positive: str | None) -> np.ndarray:
    """1 where a label is the positive class (``positive``, else 1/true, else the last)."""
    distinct = sorted({str(v) for v in labels if v is not None})
    if positive is None:
        positive = next((p for p in ("1", "True", "true") if p in distinct), None)
        if positive is None:
            if len(distinct) > 2:
                raise UsageError(
                    f"labels hold {len(distinct)} classes; name the positive one with --positive"
                )
            positive = distinct[-1] if distinct else "1"
    text = [_key(v) if not isinstance(v, bool) else str(v) for v in labels]
    return np.array([t == positive for t in text], dtype=np.int64)


def metrics(
    task: str, labels: Sequence[Any], predictions: np.ndarray, positive: str | None
) -> dict[str, Any]:
    """The figures of one group of rows, with scikit-learn's metric functions."""
    from sklearn import metrics as skm

    rows = len(labels)
    if rows == 0:
        return {"rows": 0}
    if task == "binary":
        y = positive_labels(labels, positive)
        p = np.clip(predictions.astype(np.float64), 0.0, 1.0)
        both = len(set(y.tolist())) == 2
        return {
            "rows": rows,
            "positives": int(y.sum()),
            "accuracy": float(skm.accuracy_score(y, (p >= 0.5).astype(np.int64))),
            "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,
            "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
            "brier": float(skm.brier_score_loss(y, p, pos_label=1)),
            "calibration": calibration(y, p),
        }
    if task == "label":
        truth = [str(v) for v in labels]
        said = [str(v) for v in predictions.tolist()]
        return {"rows": rows, "accuracy": float(skm.accuracy_score(truth, said))}
    y_true = np.array([np.nan if v is None else float(v) for v in labels])
    y_pred = predictions.astype(np.float64)
    return {
        "rows": rows,
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
    }


def calibration(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Per probability bin (0-0.1, …, 0.9-1): rows, mean predicted and observed rate.

    Bins hold p in [a, b), the last [0.9, 1]; empty bins are left out (as scikit-learn's
    ``calibration_curve`` with ``strategy='uniform'`` does).
    """
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "rows": int(mask.sum()),
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                }
            )
    return table


def evaluate(
    windows: Sequence[_captures.Window],
    labels_path: Path,
    id_column: str,
    label_column: str,
    *,
    model: str = "",
    join_on: str = "request",
    prediction: str | None = None,
    task: str = "auto",
    positive: str | None = None,
    window: timedelta | None = None,
    live_only: bool = True,
) -> Feedback:
    """Join a label file to captured predictions and compute the performance figures.

    ``windows`` are the model's captured windows (every version). ``prediction`` names the
    output (default: the first output that fits the task). Raises UsageError for a
    missing column or output, or an unknown task.
    """
    if task not in TASKS:
        raise UsageError(f"--task {task!r} is not one of {', '.join(TASKS)}")
    ids, labels = read_labels(labels_path, id_column, label_column)
    output = _prediction_column(windows, prediction, task)
    matched, unmatched, duplicates, unlabelled = join(
        windows, ids, labels, join_on, output, live_only
    )
    if task == "auto":
        task = detect_task(matched.labels, matched.predictions) if matched.labels else "label"
    report = Feedback(
        model,
        task,
        output.removeprefix("output."),
        len(ids),
        len(matched.labels),
        len(unmatched),
        unmatched[:SHOWN_IDS],
        duplicates,
        unlabelled,
    )
    for version in sorted(set(matched.versions.tolist())):
        mask = matched.versions == version
        report.versions.append({"version": version, **_group(task, matched, mask, positive)})
        if window is not None and mask.any():
            step = int(window.total_seconds() * 1_000_000)
            slots = matched.at // step
            for slot in np.unique(slots[mask]):
                part = mask & (slots == slot)
                report.windows.append(
                    {
                        "version": version,
                        "window_start": _captures.from_micros(int(slot) * step).isoformat(),
                        "window_end": _captures.from_micros((int(slot) + 1) * step).isoformat(),
                        **_group(task, matched, part, positive),
                    }
                )
    return report


def _group(task: str, matched: Matched, mask: np.ndarray, positive: str | None) -> dict[str, Any]:
    labels = [label for label, keep in zip(matched.labels, mask, strict=True) if keep]
    return metrics(task, labels, matched.predictions[mask], positive)


def _prediction_column(
    windows: Sequence[_captures.Window], prediction: str | None, task: str
) -> str:
    if not windows:
        raise UsageError("no captured requests to join the labels to")
    names = [c for c in windows[0].table.column_names if c.startswith("output.")]
    if prediction is not None:
        wanted = f"output.{prediction.removeprefix('output.')}"
        if wanted not in names:
            shown = ", ".join(n.removeprefix("output.") for n in names)
            raise UsageError(f"--prediction {prediction}: no such output (outputs: {shown})")
        return wanted
    import pyarrow as pa

    types = {n: windows[0].table.schema.field(n).type for n in names}
    if task in ("auto", "binary", "regression"):
        numeric = [n for n in names if pa.types.is_floating(types[n])]
        if numeric:
            return numeric[0]
    if not names:
        raise UsageError("the captured requests hold no outputs")
    return names[0]
