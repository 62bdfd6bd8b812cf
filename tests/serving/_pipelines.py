"""Small pipelines whose inputs match MLflow's documented payloads, and one that misbehaves."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import Column, Pipeline, Table, feature, model, rule


def total(x: Any) -> Any:
    """The sum of each row."""
    return x.sum(axis=1)


def fragile(x: Any) -> Any:
    """Twice x; fails on 666 (with a message that must not reach the caller), held on 7.

    Held: it creates ``entered`` in the folder $SHIPYARD_TEST_GATE, then waits until the
    test creates ``release`` there (60 s at most), so a test can act while it is in flight.
    """
    if (x == 666).any():
        raise ValueError("secret internal detail")
    if (x == 7).any():
        gate = Path(os.environ["SHIPYARD_TEST_GATE"])
        (gate / "entered").touch()
        deadline = time.monotonic() + 60
        while not (gate / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released the request")
            time.sleep(0.01)
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
    """One column x; the model fails on 666 and is held at a gate on 7 (see ``fragile``)."""
    table = Table("t", [Column("x", "float64")])
    return Pipeline(
        "fragile",
        "1.0.0",
        inputs=[table],
        nodes=[model("double", fragile, features=["t.x"])],
        outputs=["double"],
    )


def export(
    pipeline: Pipeline, folder: Path, reference: dict[str, Any], sign_key: Path | None = None
) -> Path:
    """The pipeline as a bundle with an example input (signed when ``sign_key`` is given)."""
    return pipeline.export(folder, reference=reference, sign_key=sign_key)
