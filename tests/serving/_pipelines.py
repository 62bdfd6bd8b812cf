"""Small pipelines whose inputs match MLflow's documented payloads, and one that misbehaves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import Column, Pipeline, Table, feature, model, rule


def total(x: Any) -> Any:
    """The sum of each row."""
    return x.sum(axis=1)


def fragile(x: Any) -> Any:
    """Twice x; fails on 666 (with a message that must not reach the caller), slow on 7."""
    if (x == 666).any():
        raise ValueError("secret internal detail")
    if (x == 7).any():
        time.sleep(1.5)
    return x[:, 0] * 2.0


@feature
def score(b: Any, c: Any) -> Any:
    """b plus the sum of the list c."""
    return b + c.sum(axis=1)


@rule
def shout(a: Any) -> Any:
    """a in capitals."""
    return np.array([str(v).upper() for v in a.tolist()], dtype=object)


def frame_pipeline(version: str = "1.0.0") -> Pipeline:
    """Columns a, b, c (numbers): MLflow's dataframe_split / dataframe_records examples."""
    frame = Table("frame", [Column(n, "float64") for n in ("a", "b", "c")])
    return Pipeline(
        "frame_total",
        version,
        inputs=[frame],
        nodes=[model("total", total, features=["frame.a", "frame.b", "frame.c"])],
        outputs=["total"],
    )


def tensor_pipeline() -> Pipeline:
    """Columns a (string), b (int64), c (list of numbers): MLflow's instances / inputs examples."""
    table = Table(
        "tensors", [Column("a", "string"), Column("b", "int64"), Column("c", "list[float64]")]
    )
    return Pipeline(
        "tensor_score", "1.0.0", inputs=[table], nodes=[score, shout], outputs=["score", "shout"]
    )


def fragile_pipeline() -> Pipeline:
    """One column x; the model fails on 666 and takes 1.5 s on 7."""
    table = Table("t", [Column("x", "float64")])
    return Pipeline(
        "fragile",
        "1.0.0",
        inputs=[table],
        nodes=[model("double", fragile, features=["t.x"])],
        outputs=["double"],
    )


def export(pipeline: Pipeline, folder: Path, reference: dict[str, Any]) -> Path:
    """The pipeline as an (unsigned) bundle with an example input."""
    return pipeline.export(folder, reference=reference)
