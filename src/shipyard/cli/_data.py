"""Read input and reference data files for the CLI: JSON datasets, CSV, Parquet, JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError

TABLE_SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def read_table(path: Path) -> dict[str, Any]:
    """One table file (CSV, Parquet, JSON Lines) as ``{column: numpy array}``."""
    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet

    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    try:
        if kind == "csv":
            table = pyarrow.csv.read_csv(path)
        elif kind == "parquet":
            table = pyarrow.parquet.read_table(path)
        elif kind == "jsonl":
            table = pyarrow.json.read_json(path)
        else:
            raise UsageError(f"'{path}': unknown file type (use .json, .csv, .parquet or .jsonl)")
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"cannot read '{path}': {exc}") from None
    return {name: table.column(name).to_numpy() for name in table.column_names}


def read_dataset(path: str | Path, table: str | None) -> Any:
    """A data file as a dataset for ``main()``.

    ``.json`` holds the dict dataset format (or records); table files are read as the
    table ``table`` (the pipeline's only input table). Raises UsageError naming the file.
    """
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"input file '{file}' does not exist")
    if file.suffix.lower() == ".json":
        try:
            return json.loads(file.read_text())
        except ValueError as exc:
            raise UsageError(f"'{file}' is not valid JSON: {exc}") from None
    if table is None:
        raise UsageError(
            f"'{file}' holds one table but the pipeline declares several; use a .json dataset"
        )
    return {table: read_table(file)}
