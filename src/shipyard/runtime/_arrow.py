"""Arrow columns in and out of the executor: what Spark, Parquet and batch files exchange.

Copied into every bundle, like the executor. pyarrow is imported only when one of
these functions is called; the module itself needs numpy alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# An empty output column of each type: what a node gives when no row is left to score.
EMPTY = {
    "float64": np.empty(0, dtype=np.float64),
    "int64": np.empty(0, dtype=np.int64),
    "bool": np.empty(0, dtype=bool),
    "string": np.empty(0, dtype=object),
    "datetime": np.empty(0, dtype="datetime64[us]"),
    "list[float64]": np.empty((0, 0), dtype=np.float64),
}

_PARSED_TEXT = ("float64", "int64", "bool")


def arrow_values(dtype: str, column: Any) -> Any:
    """An Arrow input column as what ``_dataset.to_array`` reads for ``dtype``.

    A text column declared numeric or bool is parsed; a value that does not parse stays
    text, so validation names it rather than the whole column failing.
    """
    if dtype == "list[float64]":  # to_numpy would give an object array of arrays
        return column.to_pylist()
    if dtype in _PARSED_TEXT and _is_text(column.type):
        return _parse_text(dtype, column)
    return column.to_numpy(zero_copy_only=False)


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _parse_text(dtype: str, column: Any) -> Any:
    """A text column declared numeric or bool: one vectorised cast when every value parses;
    otherwise each value is parsed alone and what does not parse stays text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(column)
    target = {"float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}[dtype]
    try:
        return pc.cast(trimmed, target).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parse = _parse_bool if dtype == "bool" else _parse_number
    out = np.empty(len(trimmed), dtype=object)
    out[:] = [None if v is None else parse(v) for v in trimmed.to_pylist()]
    return out


def _parse_number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_bool(text: str) -> Any:
    return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)


def arrow_array(dtype: str, values: np.ndarray) -> Any:
    """An output column as a pyarrow array of the type Spark and Parquet expect."""
    import pyarrow as pa

    if dtype == "float64":
        return pa.array(values, type=pa.float64(), from_pandas=True)
    if dtype == "int64":
        return pa.array(values, type=pa.int64(), from_pandas=True)
    if dtype == "bool":
        return pa.array(values.tolist(), type=pa.bool_())
    if dtype == "string":
        return pa.array(values.tolist(), type=pa.string())
    if dtype == "datetime":
        return pa.array(values, type=pa.timestamp("us"))
    return pa.array(values.tolist(), type=pa.list_(pa.float64()))


def arrow_type(dtype: str) -> Any:
    """The pyarrow type ``arrow_array`` gives an output column of ``dtype``."""
    return arrow_array(dtype, EMPTY[dtype]).type
