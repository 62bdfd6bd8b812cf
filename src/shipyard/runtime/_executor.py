"""The executor: runs a pipeline graph from a bundle's verified files.

This one module is what runs a pipeline everywhere: ``Pipeline.run`` in a
notebook, ``Artifact.run`` in the runtime, and the bundle's ``python_dict`` and
``pyspark_dataframe`` entry points (it is copied into every bundle). It needs
only numpy, plus each model flavor's own library when that flavor is used.
Verifying and loading a bundle is ``_loading``; Arrow conversions are ``_arrow``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _dataset
from ._arrow import EMPTY, arrow_array, arrow_values
from ._errors import (
    EndpointError,
    GraphError,
    IncompatibleArtifact,
    ModelError,
    SchemaError,
    UsageError,
)
from ._genai import KINDS as GENAI_KINDS
from ._genai import load_genai
from ._llm import Endpoint
from ._models import load_model
from ._retrieval import Bm25Index
from ._source import load_function

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """What a set of requested outputs needs: nodes in run order and input columns per table."""

    outputs: tuple[str, ...]
    nodes: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]]


class Executor:
    """A loaded, verified bundle that runs its graph on columns or on the dict format.

    Build it with ``Executor(files)`` where ``files`` are a bundle's files (already
    checked, see ``load``). Models are deserialised here, once; ``run_*`` methods are
    safe to call from several threads when the models' own predict calls are.

    ``signed`` says the caller checked MANIFEST.sig against a key; ``allow_unsafe`` lets
    pickles and skops types beyond Shipyard's allow-list load (see ``load_model``). The
    defaults (unsigned, allowed) load whatever the bundle holds, as before: right for a
    pipeline's own files and for a host that imports a bundle it chose. A service loading
    bundles that others registered passes ``allow_unsafe=False`` and gets ModelError
    naming the node instead. llm nodes call ``endpoint`` (default: the one the host's
    SHIPYARD_LLM_* variables name).

    ``app_config`` is the app config the runs see: a feature or rule whose spec names
    ``app_config`` arguments gets each from there when the key is present (else its
    default). Empty unless set with ``with_app_config``.
    """

    def __init__(
        self,
        files: Mapping[str, bytes],
        *,
        signed: bool = False,
        allow_unsafe: bool = True,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.files: Mapping[str, bytes] = files
        self.endpoint = endpoint
        self.signed = signed
        self.allow_unsafe = allow_unsafe
        self.metadata: dict[str, Any] = json.loads(files["metadata.json"])
        version = self.metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise IncompatibleArtifact(
                f"bundle format {version!r} is not readable by this runtime "
                f"(reads format {FORMAT_VERSION})"
            )
        self.input_info: dict[str, Any] = json.loads(files["input_info.json"])
        self.tables = _dataset.table_specs(self.input_info)
        self.nodes: dict[str, dict[str, Any]] = {n["name"]: n for n in self.metadata["nodes"]}
        self.outputs: tuple[str, ...] = tuple(self.metadata["outputs"])
        self._indexes: dict[str, Bm25Index] = {}  # knowledge nodes' indexes, loaded once
        self._callables = {name: self._load_node(spec, files) for name, spec in self.nodes.items()}
        # Each node input as (table, column) or (None, node): resolved once, not per request.
        self._sources = {
            name: [
                (ref.split(".", 1)[0], ref.split(".", 1)[1]) if "." in ref else (None, ref)
                for ref in spec["inputs"]
            ]
            for name, spec in self.nodes.items()
        }
        self._plans: dict[tuple[str, ...], Plan] = {}
        self.app_config: Mapping[str, Any] = {}

    def with_app_config(self, app_config: Mapping[str, Any] | None) -> Executor:
        """This executor running with ``app_config`` (a copy sharing the loaded models).

        The app config of the component version being served or scored; None or {} gives
        every configured argument its default. Raises UsageError unless a mapping.
        """
        if app_config is not None and not isinstance(app_config, Mapping):
            raise UsageError(f"app config must be a mapping, not {type(app_config).__name__}")
        configured = copy.copy(self)
        configured.app_config = copy.deepcopy(dict(app_config or {}))
        return configured

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    def dtype(self, node: str) -> str:
        """The declared output type of ``node``."""
        return str(self.nodes[node]["dtype"])

    def _load_node(self, spec: Mapping[str, Any], files: Mapping[str, bytes]) -> Any:
        if spec["kind"] == "model":
            return load_model(spec, files, signed=self.signed, allow_unsafe=self.allow_unsafe)
        if spec["kind"] in GENAI_KINDS:
            return load_genai(spec, files, self.nodes, self._indexes, endpoint=self.endpoint)
        return load_function(files[spec["file"]], spec["file"], spec["function"])

    def plan(self, outputs: Sequence[str] | None = None) -> Plan:
        """The sub-graph that computes ``outputs`` (default: the pipeline's outputs).

        Raises UsageError on an unknown output name.
        """
        wanted = tuple(outputs) if outputs else self.outputs
        cached = self._plans.get(wanted)
        if cached is not None:
            return cached
        for name in wanted:
            if name not in self.nodes:
                known = ", ".join(self.nodes)
                raise UsageError(f"unknown output '{name}' (nodes: {known})")
            if self.nodes[name]["kind"] == "knowledge":
                raise UsageError(
                    f"knowledge '{name}' is a set of documents, not an output: "
                    "name a retrieve node that reads it"
                )
        needed: set[str] = set()
        columns: dict[str, list[str]] = {}
        stack = list(wanted)
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            for ref in self.nodes[name]["inputs"]:
                if "." in ref:
                    table, column = ref.split(".", 1)
                    if column not in columns.setdefault(table, []):
                        columns[table].append(column)
                else:
                    stack.append(ref)
        order = tuple(n for n in self.nodes if n in needed)  # metadata lists nodes in run order
        plan = Plan(wanted, order, {t: tuple(c) for t, c in columns.items()})
        if len(self._plans) < 64:
            self._plans[wanted] = plan
        return plan

    def run_columns(
        self, tables: Mapping[str, Mapping[str, np.ndarray]], rows: int, plan: Plan
    ) -> dict[str, np.ndarray]:
        """Run ``plan`` on validated input arrays; return every computed node's values."""
        values: dict[str, np.ndarray] = {}
        for name in plan.nodes:
            spec = self.nodes[name]
            args = [
                values[ref] if table is None else tables[table][ref]
                for table, ref in self._sources[name]
            ]
            try:
                if spec["kind"] == "model":
                    raw = self._callables[name](args)
                else:
                    kwargs = dict(zip(spec["args"], args, strict=True))
                    kwargs.update(spec.get("params") or {})
                    for argument, key in (spec.get("app_config") or {}).items():
                        if key in self.app_config:  # a copy: a node must not change it for others
                            kwargs[argument] = copy.deepcopy(self.app_config[key])
                    raw = self._callables[name](**kwargs)
            except Exception as exc:
                message = f"{spec['kind']} '{name}' failed: {type(exc).__name__}: {exc}"
                if isinstance(exc, EndpointError):  # the endpoint's fault, not the bundle's
                    raise EndpointError(message, name, exc.reason) from exc
                raise ModelError(message) from exc
            values[name] = _coerce(name, spec["dtype"], raw, rows)
        return values

    def run_dict(
        self, data: Any, outputs: Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Run on a dataset in the dict format; return the outputs in the typed form.

        Raises SchemaError (naming table, column and row) on bad input, UsageError on an
        unknown output, ModelError when a node fails.
        """
        plan = self.plan(outputs)
        tables, rows = _dataset.parse_dataset(data, self.tables, plan.columns)
        values = self.run_columns(tables, rows, plan)
        return {name: self.typed(name, values[name]) for name in plan.outputs}

    def classes(self, name: str) -> list[Any] | None:
        """The class labels of a multi-class probability output, in column order, or None."""
        node = self.nodes[name]
        if node.get("kind") == "model" and node.get("dtype") == "list[float64]":
            labels = node.get("classes")
            return list(labels) if labels else None
        return None

    def typed(self, name: str, values: Any) -> dict[str, Any]:
        """One output in the dict format's typed form; a multi-class one names its classes."""
        entry = _dataset.encode(self.nodes[name]["dtype"], values)
        labels = self.classes(name)
        if labels is not None:
            entry["classes"] = labels
        return entry

    def run_arrays(
        self, data: Mapping[str, Mapping[str, Any]], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run on ``{table: {column: array or list}}``; return the outputs as numpy arrays."""
        plan = self.plan(outputs)
        tables, rows = _dataset.parse_dataset(data, self.tables, plan.columns)
        values = self.run_columns(tables, rows, plan)
        return {name: values[name] for name in plan.outputs}

    def score_arrow_batch(
        self, batch: Any, table: str, outputs: Sequence[str] | None, passthrough: Sequence[str] = ()
    ) -> Any:
        """Score one pyarrow RecordBatch of ``table``: a RecordBatch of passthrough + outputs.

        A row that fails validation raises the SchemaError, which also gives the row's
        passthrough values (its row number counts from the start of this batch only).
        """
        import pyarrow as pa

        plan = self.plan(outputs)
        columns = self.arrow_columns(batch, table)
        try:
            tables, rows = _dataset.parse_dataset({table: columns}, self.tables, plan.columns)
        except SchemaError as exc:
            if exc.row is not None and passthrough:
                shown = ", ".join(f"{n}={batch.column(n)[exc.row].as_py()!r}" for n in passthrough)
                exc.args = (f"{exc.args[0]} (row {exc.row} of a batch; that row has {shown})",)
            raise
        if rows == 0:
            rows = batch.num_rows
        values = self.run_columns(tables, rows, plan)
        arrays = [batch.column(name) for name in passthrough]
        for name in plan.outputs:
            arrays.append(arrow_array(self.nodes[name]["dtype"], values[name]))
        return pa.RecordBatch.from_arrays(arrays, names=[*passthrough, *plan.outputs])

    def arrow_columns(self, batch: Any, table: str) -> dict[str, Any]:
        """The declared columns of ``table`` present in a pyarrow ``batch``, ready to validate.

        Text columns declared numeric or bool (CSV read as text, a Spark CSV without
        inferSchema) are parsed here; a value that does not parse stays text, so validation
        names it (WrongType) rather than the whole column failing.
        """
        declared = self.tables[table].columns
        return {
            name: arrow_values(declared[name].type, batch.column(name))
            for name in batch.schema.names
            if name in declared
        }

    def parse_rows(
        self, table: str, columns: Mapping[str, Any], plan: Plan
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[tuple[int, SchemaError]]]:
        """Validate one table's columns, setting aside the rows that fail instead of raising.

        Returns ``(arrays of the valid rows, their row numbers or None when every row is
        valid, [(row, error)] for the others)``, errors in row order, each naming the row
        in ``columns``. A clean table costs one ``parse_dataset``; a table with bad rows is
        searched column by column by bisection (k bad rows among n: about 2k·log2(n/k)
        small checks), so a row is rejected exactly when ``run_dict`` would refuse it.
        Raises the SchemaError that concerns no row (a missing column, an unknown table).
        """
        try:
            tables, _ = _dataset.parse_dataset({table: columns}, self.tables, plan.columns)
            return tables.get(table, {}), None, []
        except SchemaError as exc:
            if exc.row is None:
                raise
        rows = len(next(iter(columns.values())))
        declared = self.tables[table].columns
        bad: dict[int, SchemaError] = {}
        for name, values in columns.items():
            if name in declared:
                for row, error in _bad_rows(table, declared[name], values, rows).items():
                    bad.setdefault(row, error)  # the first failing column names the reason
        keep = np.setdiff1d(np.arange(rows), np.fromiter(bad, dtype=np.int64, count=len(bad)))
        subset = {name: _take(values, keep) for name, values in columns.items()}
        tables, _ = _dataset.parse_dataset({table: subset}, self.tables, plan.columns)
        return tables.get(table, {}), keep, sorted(bad.items())

    def score_arrow_rows(
        self, batch: Any, table: str, outputs: Sequence[str] | None, passthrough: Sequence[str] = ()
    ) -> tuple[Any, list[tuple[int, SchemaError]]]:
        """Score the rows of a pyarrow ``batch`` that pass validation; set the others aside.

        Returns ``(RecordBatch of passthrough + outputs for the valid rows, in order,
        [(row in batch, SchemaError)] for the rows that failed)``. Raises what
        ``parse_rows`` raises, and ModelError when a node fails.
        """
        import pyarrow as pa

        plan = self.plan(outputs)
        tables, keep, rejected = self.parse_rows(table, self.arrow_columns(batch, table), plan)
        rows = batch.num_rows if keep is None else len(keep)
        if rows:
            values = self.run_columns({table: tables}, rows, plan)
        else:  # models refuse empty input: nothing to score, nothing to call
            values = {name: EMPTY[self.nodes[name]["dtype"]] for name in plan.outputs}
        kept = batch if keep is None else batch.take(pa.array(keep, type=pa.int64()))
        arrays = [kept.column(name) for name in passthrough]
        for name in plan.outputs:
            arrays.append(arrow_array(self.nodes[name]["dtype"], values[name]))
        return pa.RecordBatch.from_arrays(arrays, names=[*passthrough, *plan.outputs]), rejected

    def score_arrow_marked(
        self,
        batch: Any,
        table: str,
        outputs: Sequence[str] | None,
        passthrough: Sequence[str],
        reason_column: str,
    ) -> Any:
        """``score_arrow_rows`` as one RecordBatch: passthrough, outputs and ``reason_column``.

        The valid rows come first with a null reason; the rejected rows follow with null
        outputs and their reason as JSON text ``{"table", "column", "message"}``. For
        Spark's mapInArrow, which returns one schema.
        """
        import pyarrow as pa

        scored, rejected = self.score_arrow_rows(batch, table, outputs, passthrough)
        if not rejected:
            return scored.append_column(reason_column, pa.nulls(scored.num_rows, pa.string()))
        bad = batch.take(pa.array([row for row, _ in rejected], type=pa.int64()))
        arrays = []
        for i, name in enumerate(scored.schema.names):
            tail = bad.column(name) if name in passthrough else pa.nulls(len(rejected))
            arrays.append(pa.concat_arrays([scored.column(i), tail.cast(scored.schema[i].type)]))
        reasons = [
            json.dumps({"table": e.table, "column": e.column, "message": reason(e)})
            for _, e in rejected
        ]
        arrays.append(pa.array([None] * scored.num_rows + reasons, type=pa.string()))
        return pa.RecordBatch.from_arrays(arrays, names=[*scored.schema.names, reason_column])


def _take(values: Any, rows: np.ndarray) -> Any:
    """``values`` (a numpy array or a list) at ``rows``."""
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows.tolist()]


def _bad_rows(
    table: str, spec: _dataset.ColumnSpec, values: Any, rows: int
) -> dict[int, SchemaError]:
    """The rows of one column that fail validation, each with its error naming that row.

    Bisection: a segment that validates is done, one that fails is halved, and a failing
    segment of a few rows is checked row by row. Validation is per value, so a segment
    passes exactly when all its rows do.
    """
    found: dict[int, SchemaError] = {}
    segments = [(0, rows)]
    while segments:
        start, stop = segments.pop()
        try:
            _dataset.to_array(table, spec, values[start:stop])
            continue
        except SchemaError as exc:
            if stop - start == 1:
                found[start] = relocate(exc, start)
                continue
        if stop - start <= _ROW_BY_ROW:
            segments += [(row, row + 1) for row in range(stop - 1, start - 1, -1)]
        else:
            middle = (start + stop) // 2
            segments += [(middle, stop), (start, middle)]
    return found


_ROW_BY_ROW = 8  # a failing segment this small is likely mostly bad: halving would cost more


def reason(error: SchemaError) -> str:
    """A SchemaError's message without its ``table 't', column 'c', row r: `` prefix."""
    message = str(error)
    if error.table is not None or error.column is not None or error.row is not None:
        message = message.split(": ", 1)[-1]
    return message


def relocate(error: SchemaError, row: int | None) -> SchemaError:
    """The same error naming another row (counted from the start of a file, say)."""
    return type(error)(reason(error), error.table, error.column, row)


def _coerce(name: str, dtype: str, raw: Any, rows: int) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim == 0:
        arr = np.full(rows, arr.item())
    if len(arr) != rows:
        raise ModelError(f"node '{name}' returned {len(arr)} values for {rows} rows")
    try:
        if dtype == "float64":
            return arr.astype(np.float64, copy=False)
        if dtype == "int64":
            if arr.dtype.kind == "f" and np.isnan(arr).any():
                return arr  # nulls stay NaN in a float array, as in a nullable int64 input
            return arr.astype(np.int64, copy=False)
        if dtype == "bool":
            if arr.dtype.kind == "O" and any(v is None for v in arr.tolist()):
                out_bool = np.empty(rows, dtype=object)
                out_bool[:] = [None if v is None else bool(v) for v in arr.tolist()]
                return out_bool
            return arr.astype(bool, copy=False)
        if dtype == "string":
            out = np.empty(rows, dtype=object)
            out[:] = [None if v is None else str(v) for v in arr.tolist()]
            return out
        if dtype == "datetime":
            return arr.astype("datetime64[us]")
        if dtype == "list[float64]":
            out2 = arr.astype(np.float64, copy=False)
            return out2 if out2.ndim == 2 else out2.reshape(rows, -1)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"node '{name}' returned values that are not {dtype}: {exc}") from None
    raise GraphError(f"node '{name}' has unknown type '{dtype}'")
