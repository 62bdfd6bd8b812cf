"""The training-data profile a bundle carries in ``reference/`` (for drift checks later).

Profile format 2 (``"format": 2``) adds what the drift tests of ``shipyard.monitoring``
need beyond format 1's summary: per numeric column ``bins`` (cut points at the reference's
deciles and the count of reference values in each bin, for PSI) and ``percentiles``
(0 to 100 %, step 1, for Kolmogorov-Smirnov against the reference's distribution); per
category column ``other`` (the count outside the top categories); and ``outputs``, the
same profile of what the pipeline returns for the reference data (prediction drift).
A format 1 profile (no ``format`` key) has only the histogram and the top categories.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SchemaError
from ..runtime import encode

if TYPE_CHECKING:
    from ._pipeline import Pipeline

PROFILE_FORMAT = 2
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
TOP_CATEGORIES = 50
DRIFT_BINS = 10  # PSI bins: cut at the reference's deciles (fewer when values repeat)


def _frame_columns(frame: Any) -> dict[str, Any]:
    """A pandas DataFrame (or anything with .columns and [name]) as {column: numpy array}."""
    out = {}
    for name in frame.columns:
        series = frame[name]
        values = series.to_numpy() if hasattr(series, "to_numpy") else np.asarray(series)
        if values.dtype.kind == "O" or str(getattr(series, "dtype", "")) in ("string", "str"):
            values = np.array(
                [None if _is_missing(v) else v for v in values.tolist()], dtype=object
            )
        out[str(name)] = values
    return out


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or type(value).__name__ in ("NAType", "NaTType")
    )


def reference_tables(reference: Any, pipeline: Pipeline) -> dict[str, Any]:
    """Reference data in any accepted form as a dataset ``{table: columns}``.

    Accepts the dict dataset format, one DataFrame (for a single-table pipeline) or
    ``{table: DataFrame}``. Raises SchemaError when it fits none.
    """
    if hasattr(reference, "columns") and not isinstance(reference, Mapping):
        if len(pipeline.inputs) != 1:
            raise SchemaError(
                "a single DataFrame as reference needs a single-table pipeline; pass {table: frame}"
            )
        return {pipeline.inputs[0].name: _frame_columns(reference)}
    if isinstance(reference, Mapping):
        return {
            name: _frame_columns(value)
            if hasattr(value, "columns") and not isinstance(value, Mapping)
            else value
            for name, value in reference.items()
        }
    raise SchemaError("reference must be a dict dataset, a DataFrame or {table: DataFrame}")


def _numeric_profile(values: np.ndarray) -> dict[str, Any]:
    data = values.astype(np.float64)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return {}
    counts, edges = np.histogram(data, bins=10)
    return {
        "min": float(data.min()),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "std": float(data.std()),
        "quantiles": {str(q): float(np.quantile(data, q)) for q in QUANTILES},
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "bins": _quantile_bins(data),
        "percentiles": np.quantile(data, np.linspace(0.0, 1.0, 101)).tolist(),
    }


def _quantile_bins(data: np.ndarray) -> dict[str, Any]:
    """Cut points at the deciles (repeats dropped) and the count in each of the bins.

    Bin 0 holds values up to the first cut, bin i values in (cut[i-1], cut[i]], the last
    bin values above the last cut, so a current value always falls into some bin.
    """
    cuts = np.unique(np.quantile(data, np.linspace(0.0, 1.0, DRIFT_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(cuts, data, side="left"), minlength=len(cuts) + 1)
    return {"cuts": cuts.tolist(), "counts": counts.tolist()}


def profile_tables(
    columns: Mapping[str, Mapping[str, np.ndarray]],
    rows: int,
    outputs: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per-column counts, nulls, quantiles and bins (numbers) or top categories (others).

    ``outputs`` (node -> values the pipeline returned for the reference rows) are
    profiled alike under ``outputs``.
    """
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "rows": rows,
        "tables": {table: profile_columns(arrays) for table, arrays in columns.items()},
    }
    if outputs is not None:
        profile["outputs"] = profile_columns(outputs)
    return profile


def profile_columns(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The profile of each column of one table (see ``profile_tables``)."""
    return {name: _column_profile(values) for name, values in arrays.items()}


def _column_profile(values: np.ndarray) -> dict[str, Any]:
    if values.dtype.kind == "f":
        nulls = int(np.isnan(values).sum()) if values.ndim == 1 else 0
    elif values.dtype.kind == "M":
        nulls = int(np.isnat(values).sum())
    elif values.dtype.kind == "O":
        nulls = sum(v is None for v in values.tolist())
    else:
        nulls = 0
    profile: dict[str, Any] = {"count": int(len(values)), "nulls": nulls}
    if values.ndim == 1 and values.dtype.kind in "fiu":
        profile.update(_numeric_profile(values))
    elif values.ndim == 1 and values.dtype.kind in "Ob":
        present = [v for v in values.tolist() if v is not None]
        unique, counts = np.unique(
            np.array([str(v) for v in present], dtype=object), return_counts=True
        )
        top = sorted(zip(unique.tolist(), counts.tolist(), strict=True), key=lambda p: -p[1])
        profile["categories"] = dict(top[:TOP_CATEGORIES])
        profile["other"] = int(sum(c for _, c in top[TOP_CATEGORIES:]))
        profile["distinct"] = len(unique)
    return profile


def example_input(
    columns: Mapping[str, Mapping[str, np.ndarray]], input_info: Mapping[str, Any], rows: int
) -> dict[str, Any]:
    """The first ``rows`` reference rows in the typed dict format."""
    types = {(t["name"], c["name"]): c["type"] for t in input_info["tables"] for c in t["columns"]}
    return {
        table: {
            name: encode(types[(table, name)], values[:rows]) for name, values in arrays.items()
        }
        for table, arrays in columns.items()
    }
