"""Request and response bodies: the dict format, MLflow's payloads, the Open Inference Protocol.

Each ``decode_*`` turns a decoded JSON document into validated numpy columns through a
``ModelRunner``; each ``encode_*`` turns output arrays into the bytes of the answer in
the same style. Structural mistakes (a missing field, a shape that does not match its
data) raise HttpError 400; values that break the input schema raise the runtime's
SchemaError (422, naming table, column and row).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..errors import HttpError, SchemaError
from ._runner import OIP_TYPES, ModelRunner, Tables

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclass(frozen=True)
class Decoded:
    """A request turned into validated columns, and what its answer must look like.

    ``given`` is the request's table as ``{column: values}`` (or the whole dataset for a
    multi-table pipeline): a shadow version re-validates it against its own schema.
    """

    tables: Tables
    rows: int
    style: str  # "dict", "mlflow" or "oip"
    given: Any
    outputs: tuple[str, ...] = ()
    binary_outputs: frozenset[str] = frozenset()
    binary_all: bool = False
    request_id: str | None = None


# -- the predict route: the dict format or MLflow's payloads ---------------------------------


def _only_mlflow_key(document: Any) -> str | None:
    """The one MLflow key of ``document`` when it holds exactly one (plus optional
    ``params``) and nothing else; None otherwise."""
    if type(document) is not dict:
        return None
    keys = [k for k in MLFLOW_KEYS if k in document]
    if len(keys) != 1 or set(document) - {keys[0], "params"}:
        return None
    return keys[0]


def mlflow_key(document: Any, runner: ModelRunner) -> str | None:
    """The MLflow payload key a predict body uses, or None for the dict format.

    A body is MLflow's when it holds exactly one of its keys (plus optional ``params``)
    and that key is not also a table or column the pipeline declares.
    """
    key = _only_mlflow_key(document)
    if key is None:
        return None
    if key in runner.tables or (
        runner.single_table and key in runner.tables[runner.single_table].columns
    ):
        return None
    return key


def decode_predict(document: Any, runner: ModelRunner, bool_free: bool) -> Decoded:
    """A predict body in the dict format or one of MLflow's four forms, validated."""
    key = mlflow_key(document, runner)
    if key is None:
        tables, rows = runner.dataset(document, bool_free)
        return Decoded(tables, rows, "dict", document)
    return _decode_mlflow(key, document, runner, bool_free)


def decode_invocations(document: Any, runner: ModelRunner, bool_free: bool) -> Decoded:
    """An ``/invocations`` body: exactly one of MLflow's four payloads, validated.

    As MLflow's scoring server, the route takes nothing else: any other body is HttpError
    400 naming the four keys. Its key is MLflow's even where a column shares its name.
    """
    key = _only_mlflow_key(document)
    if key is None:
        raise HttpError(
            400,
            "BadRequest",
            "/invocations takes one of MLflow's payloads: a JSON object with exactly one of "
            f"{', '.join(MLFLOW_KEYS)} (and optionally params)",
        )
    return _decode_mlflow(key, document, runner, bool_free)


def _decode_mlflow(key: str, document: Any, runner: ModelRunner, bool_free: bool) -> Decoded:
    given = mlflow_columns(key, document[key], runner)
    tables, rows = runner.columns(given, bool_free)
    return Decoded(tables, rows, "mlflow", given)


def mlflow_columns(key: str, payload: Any, runner: ModelRunner) -> Any:
    """MLflow's ``dataframe_split`` / ``dataframe_records`` / ``instances`` / ``inputs``
    as ``{column: values}`` (records stay records: the runtime reads them)."""
    if runner.single_table is None:
        raise SchemaError(
            f"MLflow's '{key}' payload fits a pipeline with one input table; this one declares "
            f"{', '.join(runner.tables)}: send the dict format {{table: {{column: [...]}}}}"
        )
    if key == "dataframe_split":
        if not isinstance(payload, dict) or "columns" not in payload or "data" not in payload:
            raise HttpError(
                400, "BadRequest", 'dataframe_split needs {"columns": [...], "data": [[...]]}'
            )
        return _rows_to_columns(payload["columns"], payload["data"])
    if isinstance(payload, dict):  # instances / inputs as columns: {column: [values]}
        return payload
    if payload == []:  # no rows: zero values of every column (no record names one)
        return {name: [] for name in runner.tables[runner.single_table].columns}
    if isinstance(payload, list) and payload and all(isinstance(r, list) for r in payload):
        # rows without names: the declared columns, in order (as a tensor's columns)
        names = list(runner.tables[runner.single_table].columns)
        return _rows_to_columns(names, payload)
    if isinstance(payload, list):
        return _records_to_columns(payload)
    raise HttpError(400, "BadRequest", f"'{key}' must be a list of rows or records, or columns")


def _rows_to_columns(names: Any, rows: Any) -> dict[str, list[Any]]:
    if not isinstance(names, list) or not isinstance(rows, list):
        raise HttpError(400, "BadRequest", "columns and data must be lists")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise SchemaError(
                f"has {len(row) if isinstance(row, list) else 'no'} values for "
                f"{len(names)} columns",
                None,
                None,
                i,
            )
    return {str(name): [row[i] for row in rows] for i, name in enumerate(names)}


def _records_to_columns(records: list[Any]) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise SchemaError("records must be objects ({column: value})", None, None, i)
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in records] for name in names}


def encode_predict(
    runner: ModelRunner, decoded: Decoded, values: Mapping[str, np.ndarray]
) -> bytes:
    """The predict answer: the typed dict format, or ``{"predictions": [records]}`` for MLflow."""
    typed = runner.typed(values)
    if decoded.style == "dict":
        return orjson.dumps(typed)
    names = list(typed)
    columns = [typed[n]["values"] for n in names]
    records = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    return orjson.dumps({"predictions": records})


# -- the Open Inference Protocol -------------------------------------------------------------

_NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOATS = {"FP16", "FP32", "FP64"}
DATATYPES = {  # the datatypes an input column of each type takes
    "float64": _FLOATS | _INTS,
    "int64": _INTS,
    "bool": {"BOOL"},
    "string": {"BYTES"},
    "datetime": {"BYTES"},
    "list[float64]": _FLOATS | _INTS,
}


def split_binary(body: bytes, header_length: bytes | None) -> tuple[bytes, bytes]:
    """``(JSON header, binary tensor data)`` of an infer body (binary tensor extension)."""
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        raise HttpError(
            400, "BadRequest", "Inference-Header-Content-Length is not a number"
        ) from None
    if not 0 <= size <= len(body):
        raise HttpError(400, "BadRequest", "Inference-Header-Content-Length exceeds the body")
    return body[:size], body[size:]


def _bad(message: str) -> HttpError:
    return HttpError(400, "BadRequest", message)


def _parameters(holder: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The ``parameters`` object of a request, input or output ({} when absent or null)."""
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if type(parameters) is not dict:
        raise _bad(f"{where}: 'parameters' must be an object")
    return parameters


def _binary_size(parameters: Mapping[str, Any], name: str) -> int | None:
    """An input's ``binary_data_size`` (None: its data is in JSON); 400 unless a size."""
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise _bad(f"input '{name}': 'binary_data_size' must be a whole number of bytes")
    return size


def decode_infer(document: Any, binary: bytes, runner: ModelRunner, bool_free: bool) -> Decoded:
    """An inference request (JSON data or binary tensors), validated against ``runner``.

    A malformed request (a field of the wrong type, data that does not fit its shape)
    is HttpError 400 naming the input and field; values that break the input schema
    are the runtime's SchemaError (422).
    """
    if type(document) is not dict or type(document.get("inputs")) is not list:
        raise _bad("an inference request needs an 'inputs' list")
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise _bad("the request's 'id' must be a string")
    parameters = _parameters(document, "the request")
    outputs = document.get("outputs")
    if outputs is not None and type(outputs) is not list:
        raise _bad("'outputs' must be a list of {\"name\": ...}")
    given: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    offset = 0
    for tensor in document["inputs"]:
        if type(tensor) is not dict or type(tensor.get("name")) is not str:
            raise _bad("each input needs a 'name'")
        name = tensor["name"]
        if name in seen:
            raise _bad(f"input '{name}' is given twice")
        seen.add(name)
        size = _binary_size(_parameters(tensor, f"input '{name}'"), name)
        if name not in runner.input_columns:  # like an extra column: ignored
            offset += size or 0
            continue
        table, spec = runner.input_columns[name]
        values, offset = _tensor_values(tensor, spec.type, size, binary, offset)
        given.setdefault(table, {})[spec.name] = values
    if runner.single_table is not None:
        only = given.get(runner.single_table, {})
        tables, rows = runner.columns(only, bool_free and not binary)
        source: Any = only
    else:
        tables, rows = runner.dataset(given)
        source = given
    wanted: list[str] = []
    binary_outputs: set[str] = set()
    for output in outputs or ():
        if type(output) is not dict or type(output.get("name")) is not str:
            raise _bad("each requested output needs a 'name'")
        wanted.append(output["name"])
        if _parameters(output, f"output '{output['name']}'").get("binary_data"):
            binary_outputs.add(output["name"])
    return Decoded(
        tables,
        rows,
        "oip",
        source,
        tuple(wanted),
        frozenset(binary_outputs),
        bool(parameters.get("binary_data_output")),
        request_id,
    )


def _tensor_values(
    tensor: Mapping[str, Any], column_type: str, size: int | None, binary: bytes, offset: int
) -> tuple[Any, int]:
    """One input tensor's values as a list or array for its column; checks type and shape.

    ``size`` is its ``binary_data_size`` (None: the values are its JSON ``data``), read
    from ``binary`` at ``offset``; returns the values and the offset of the next tensor.
    """
    name, datatype, shape = tensor["name"], tensor.get("datatype"), tensor.get("shape")
    if type(datatype) is not str or datatype not in DATATYPES[column_type]:
        raise SchemaError(
            f"datatype {datatype!r} does not fit a {column_type} column "
            f"(send {OIP_TYPES[column_type]})",
            None,
            name,
        )
    if type(shape) is not list or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise _bad(f"input '{name}': 'shape' must be a list of sizes")
    count = math.prod(shape)
    if size is not None:
        chunk = binary[offset : offset + size]
        if len(chunk) != size:
            raise _bad(f"input '{name}': binary data is shorter than declared")
        offset += size
        if datatype == "BYTES":
            values: Any = _bytes_elements(chunk, name)
        else:
            item = _NUMPY[datatype].itemsize
            if size != count * item:
                raise _bad(
                    f"input '{name}': shape {shape} of {datatype} needs {count * item} bytes, "
                    f"binary_data_size is {size}"
                )
            values = np.frombuffer(chunk, dtype=_NUMPY[datatype])
    else:
        values = tensor.get("data")
        if type(values) is not list:
            raise _bad(f"input '{name}' has no 'data' list")
        if values and type(values[0]) is list:  # nested as the shape says: flatten them
            values = _flatten(values, shape, name)
    if len(values) != count:
        raise _bad(f"input '{name}': shape {shape} needs {count} values, got {len(values)}")
    if column_type == "list[float64]":
        if len(shape) != 2:
            raise _bad(f"input '{name}': a list column needs shape [rows, n]")
        return np.asarray(values, dtype=np.float64).reshape(shape), offset
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise _bad(f"input '{name}': shape must be [rows] or [rows, 1]")
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and column_type != "bool":
        values = values.astype(np.float64 if column_type == "float64" else np.int64)
    return values, offset


def _flatten(data: list[Any], shape: list[int], name: str) -> list[Any]:
    """Nested ``data`` in row-major order; 400 unless its nesting is exactly ``shape``."""
    flat: list[Any] = []
    last = len(shape) - 1

    def walk(items: Any, level: int) -> None:
        if type(items) is not list or len(items) != shape[level]:
            raise _bad(f"input '{name}': nested 'data' does not match shape {shape}")
        if level == last:
            flat.extend(items)
        else:
            for item in items:
                walk(item, level + 1)

    walk(data, 0)
    return flat


def _bytes_elements(chunk: bytes, name: str) -> list[str]:
    """BYTES elements of the binary extension: each a 4-byte little-endian length, then UTF-8."""
    out, offset = [], 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise _bad(f"input '{name}': malformed BYTES tensor (a length cut short)")
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > len(chunk):
            raise _bad(f"input '{name}': malformed BYTES tensor (an element runs past its data)")
        out.append(chunk[offset : offset + length].decode("utf-8", errors="replace"))
        offset += length
    return out


def encode_infer(
    runner: ModelRunner, decoded: Decoded, values: Mapping[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The inference response and, when some outputs are binary, the JSON header's length."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in values.items():
        dtype = runner.executor.dtype(name)
        datatype = OIP_TYPES[dtype]
        if dtype == "int64" and array.dtype.kind == "f":
            datatype = "FP64"  # a nullable int64 holding nulls comes back as floats with NaN
        shape = list(array.shape) if dtype == "list[float64]" else [len(array)]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        labels = runner.executor.classes(name)
        if labels is not None:  # the columns of a multi-class probability tensor
            entry["parameters"] = {"classes": labels}
        if decoded.binary_all or name in decoded.binary_outputs:
            blob = _binary(datatype, dtype, array)
            entry.setdefault("parameters", {})["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            typed = runner.typed({name: array})[name]["values"]
            entry["data"] = (
                np.asarray(typed).ravel().tolist() if dtype == "list[float64]" else typed
            )
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": runner.model,
        "model_version": runner.version,
        "outputs": outputs,
    }
    if decoded.request_id is not None:
        document["id"] = decoded.request_id
    head = orjson.dumps(document)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def _binary(datatype: str, dtype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":
        items = [
            str(v) if v is not None else ""
            for v in (
                array.astype("datetime64[us]").astype(str).tolist()
                if dtype == "datetime"
                else array.tolist()
            )
        ]
        encoded = [s.encode("utf-8") for s in items]
        return b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    if datatype == "BOOL":
        return np.asarray([bool(v) for v in array.tolist()], dtype=np.bool_).tobytes()
    return np.ascontiguousarray(array, dtype=_NUMPY[datatype]).tobytes()


def model_metadata(runner: ModelRunner, versions: Sequence[str]) -> dict[str, Any]:
    """The Open Inference Protocol's model metadata: name, versions, platform, inputs, outputs."""
    return {
        "name": runner.model,
        "versions": list(versions),
        "platform": "shipyard",
        "inputs": [t.to_json() for t in runner.inputs],
        "outputs": [t.to_json() for t in runner.outputs],
    }
