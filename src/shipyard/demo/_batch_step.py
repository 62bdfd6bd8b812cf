"""The batch step of ``shipyard demo``: score 100,000 generated rows, a few of them broken."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table as RichTable

from ..batch import BatchOptions, BatchResult, run_local
from ._display import ProgressBar, no_progress
from ._pipeline import reference

DEMO_ROWS = 100_000


def tumour_rows(rows: int, seed: int = 0, noise: float = 0.02) -> Any:
    """A breast-cancer-shaped pyarrow Table of ``rows`` rows: an ``id`` column and the 30
    measurements, resampled from scikit-learn's data with multiplicative noise (never
    negative)."""
    import numpy as np
    import pyarrow as pa

    data = reference()["tumours"]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(next(iter(data.values()))), rows)
    columns: dict[str, Any] = {"id": pa.array([f"T{i:07d}" for i in range(rows)])}
    for name, values in data.items():
        sample = np.asarray(values)[picks] * (1.0 + rng.normal(0.0, noise, rows))
        columns[name] = np.round(np.maximum(sample, 0.0), 6)
    return pa.table(columns)


def write_demo_csv(path: Path, rows: int = DEMO_ROWS) -> list[str]:
    """Write ``rows`` generated rows to ``path`` with a few deliberately broken; return their ids.

    Broken: a word where a number belongs, a negative area (out of range), an empty
    required value, and a line with one field too many (it cannot be parsed at all).
    """
    import pyarrow.csv as pcsv

    table = tumour_rows(rows)
    pcsv.write_csv(table, path)
    lines = path.read_bytes().split(b"\n")
    names = table.column_names
    damage = {
        1_234: ("mean_radius", "unknown"),
        25_000: ("mean_area", "-310.5"),
        61_803: ("worst_concave_points", ""),
    }
    broken = []
    for row, (column, value) in damage.items():
        fields = lines[row + 1].split(b",")
        fields[names.index(column)] = value.encode()
        lines[row + 1] = b",".join(fields)
        broken.append(f"T{row:07d}")
    lines[90_001] += b",0.5"  # the header is line 0: this is row 90,000
    broken.append("T0090000")
    path.write_bytes(b"\n".join(lines))
    return broken


def batch_step(
    workdir: str | os.PathLike[str],
    bundle_path: str | os.PathLike[str],
    console: Console,
    progress: ProgressBar = no_progress,
) -> BatchResult:
    """Score a generated CSV of 100,000 rows (four broken) with ``bundle_path``, with a
    ``progress`` bar; print the summary and the rejects on ``console``. Files go to
    ``workdir/batch/``."""
    folder = Path(workdir) / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "tumours.csv"
    write_demo_csv(source)
    output = folder / "scores.csv"
    command = f"shipyard batch run {bundle_path} --input {source} --output {output} --id-column id"
    console.print(f"$ {command}", soft_wrap=True)
    with progress("scoring tumours.csv") as update:
        options = BatchOptions(id_column="id")
        result = run_local(bundle_path, str(source), str(output), options, on_progress=update)
    console.print(result.summary(), soft_wrap=True)
    grid = RichTable(title=f"rejected rows ({result.rejects})", title_justify="left")
    for column in ("id", "column", "row", "message"):
        grid.add_column(column)
    for line in Path(result.rejects).read_bytes().splitlines():
        record = orjson.loads(line)
        shown = [record.get(c) for c in ("id", "column", "row", "message")]
        grid.add_row(*("-" if v is None else str(v) for v in shown))
    console.print(grid)
    return result
