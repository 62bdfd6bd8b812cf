"""``ModelRunner``: one loaded bundle version, ready to validate, run and answer requests.

A runner is built once per loaded version (at startup or in the background before a
swap) and never changes afterwards, so requests in flight can keep using it after the
route table moved on. The hot path is ``columns`` → ``run``: numpy arrays all the way,
no pandas and no per-request model objects.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SchemaError
from ..runtime import (
    Artifact,
    ColumnSpec,
    Endpoint,
    Executor,
    Plan,
    parse_dataset,
    recorded_calls,
    to_array,
)

Tables = dict[str, dict[str, np.ndarray]]

# Open Inference Protocol datatype of each column/node type (datetime travels as ISO text).
OIP_TYPES = {
    "float64": "FP64",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
    "list[float64]": "FP64",
}


@dataclass(frozen=True)
class TensorInfo:
    """An input or output as the Open Inference Protocol describes it: name, datatype, shape."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _tensor(name: str, dtype: str) -> TensorInfo:
    return TensorInfo(name, OIP_TYPES[dtype], (-1, -1) if dtype == "list[float64]" else (-1,))


class ModelRunner:
    """One version of one model: a verified executor plus what serving it needs.

    ``model`` is the component name routes use, ``version`` the label responses carry
    (``v2``, a candidate's id, or the bundle version when served from a file).
    Safe to share between threads when the bundle's models are (scikit-learn and
    onnxruntime models are).
    """

    def __init__(self, executor: Executor, model: str, version: str, digest: str = "") -> None:
        self.executor = executor
        self.model = model
        self.version = version
        self.digest = digest
        self.plan: Plan = executor.plan()
        self.tables = executor.tables
        self.single_table: str | None = next(iter(self.tables)) if len(self.tables) == 1 else None
        example = executor.files.get("reference/example_input.json")
        self.example_input: Any = json.loads(example) if example else None
        self.warm_seconds: float | None = None
        if self.single_table is not None:
            columns = self.tables[self.single_table].columns
            self._columns: Mapping[str, ColumnSpec] = columns
            self._floats = tuple(n for n, c in columns.items() if c.type == "float64")
            self._low, self._high = _bounds([columns[n] for n in self._floats])
            self._bounded = any(c.min is not None or c.max is not None for c in columns.values())
            self._needed = self.plan.columns.get(self.single_table, ())
        # Open Inference Protocol input names: the column, or table.column with several tables.
        self.input_columns: dict[str, tuple[str, ColumnSpec]] = {
            (column.name if self.single_table else f"{table.name}.{column.name}"): (
                table.name,
                column,
            )
            for table in self.tables.values()
            for column in table.columns.values()
        }
        self.inputs = tuple(_tensor(n, c.type) for n, (_, c) in self.input_columns.items())
        self.outputs = tuple(_tensor(name, executor.dtype(name)) for name in self.plan.outputs)
        self._llm_nodes = frozenset(n for n, s in executor.nodes.items() if s["kind"] == "llm")

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        model: str | None = None,
        version: str | None = None,
        digest: str = "",
        public_key: str | None = None,
        allow_unsafe: bool = True,
    ) -> ModelRunner:
        """Load a bundle.tar.gz (verified: manifest, and signature when a key is set).

        ``model`` and ``version`` default to the bundle's name and version. Raises the
        runtime's ArtifactError subclasses for a bundle that fails verification, and
        ModelError for a pickle (or a skops type beyond the allow-list) when
        ``allow_unsafe`` is False, as ``shipyard serve --bundle`` loads.
        """
        artifact = Artifact(path, public_key)
        return cls.from_artifact(artifact, model, version, digest, allow_unsafe=allow_unsafe)

    @classmethod
    def from_artifact(
        cls,
        artifact: Artifact,
        model: str | None = None,
        version: str | None = None,
        digest: str = "",
        *,
        public_key: bytes | None = None,
        allow_unsafe: bool = True,
        endpoint: Endpoint | None = None,
    ) -> ModelRunner:
        """Load an opened bundle (verified first, as ``Artifact.executor`` does).

        ``public_key`` checks the signature (e.g. the registry's trusted key that signed
        it); ``allow_unsafe`` False refuses pickles and skops types beyond the allow-list;
        ``endpoint`` is where its llm nodes call (default: the host's SHIPYARD_LLM_*).
        """
        executor = artifact.executor(
            public_key=public_key, allow_unsafe=allow_unsafe, endpoint=endpoint
        )
        return cls(executor, model or executor.name, version or executor.version, digest)

    def configured(self, app_config: Mapping[str, Any] | None) -> ModelRunner:
        """This runner answering with ``app_config``: the app config of the component version
        it serves, which features and rules that read app config see (a copy sharing the
        loaded models; warm already)."""
        if not app_config and not self.executor.app_config:
            return self
        runner = copy.copy(self)
        runner.executor = self.executor.with_app_config(app_config)
        return runner

    # -- decoding -----------------------------------------------------------------------

    def columns(self, given: Mapping[str, Any], bool_free: bool = False) -> tuple[Tables, int]:
        """Validated input arrays from ``{column: values}`` of the pipeline's only table.

        ``bool_free`` says the caller knows no value is a JSON boolean (the body holds no
        ``true``/``false``): float columns are then stacked into one array without a
        per-value type check. Anything unusual takes the runtime's full validation, which
        raises a SchemaError naming table, column and row. Raises SchemaError when the
        pipeline declares several tables.
        """
        table = self.single_table
        if table is None:
            known = ", ".join(self.tables)
            raise SchemaError(
                f"this pipeline has several input tables ({known}): "
                "send the dict format {table: {column: [...]}}"
            )
        arrays = self._fast_columns(given) if bool_free else None
        if arrays is None:
            return parse_dataset({table: given}, self.tables, self.plan.columns)
        return {table: arrays[0]}, arrays[1]

    def _fast_columns(self, given: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int] | None:
        """Numeric columns stacked and range-checked at once; None when anything is unusual."""
        if not isinstance(given, Mapping):
            return None
        table = self.single_table
        assert table is not None
        names: list[str] = []
        lists: list[Any] = []
        others: list[tuple[ColumnSpec, Any]] = []
        if tuple(given) == self._floats:
            # The usual request: exactly the declared columns, in order, as plain lists.
            lists = list(given.values())
            if {type(v) for v in lists} == {list}:
                names = list(self._floats)
            else:
                lists = []
        for name, values in () if names else given.items():
            spec = self._columns.get(name)
            if spec is None:
                continue  # extra columns are ignored, as the runtime does
            if type(values) is dict:  # the typed form {"type": ..., "values": [...]}
                if values.get("type") not in (None, spec.type) or "values" not in values:
                    return None
                values = values["values"]
            if spec.type == "float64" and type(values) is list:
                names.append(name)
                lists.append(values)
            else:
                others.append((spec, values))
        arrays: dict[str, np.ndarray] = {}
        rows = -1
        if lists:
            try:
                block = np.array(lists)
            except (ValueError, TypeError, OverflowError):
                return None  # ragged or odd values: the full path names the row
            if block.ndim != 2 or block.dtype.kind not in "fi" or block.shape[1] == 0:
                return None  # nulls, strings or nested lists
            block = block.astype(np.float64, copy=False)
            if len(names) == len(self._floats) and tuple(names) == self._floats:
                low, high = self._low, self._high
            else:
                low, high = _bounds([self._columns[n] for n in names])
            if self._bounded and ((block < low) | (block > high)).any():
                return None
            arrays = dict(zip(names, block, strict=True))
            rows = block.shape[1]
        for spec, values in others:
            array = to_array(table, spec, values)
            if rows not in (-1, len(array)):
                return None
            rows = len(array)
            arrays[spec.name] = array
        if rows <= 0 or any(name not in arrays for name in self._needed):
            return None
        return arrays, rows

    def dataset(self, data: Any, bool_free: bool = False) -> tuple[Tables, int]:
        """Validated input arrays from a dataset in the dict format (any of its forms).

        ``bool_free`` as for ``columns``. Raises a SchemaError subclass naming table,
        column and row.
        """
        table = self.single_table
        if bool_free and table is not None and type(data) is dict:
            given = data[table] if len(data) == 1 and table in data else data  # or a bare table
            fast = self._fast_columns(given) if type(given) is dict else None
            if fast is not None:
                return {table: fast[0]}, fast[1]
        return parse_dataset(data, self.tables, self.plan.columns)

    # -- running ------------------------------------------------------------------------

    def plan_for(self, outputs: Sequence[str] | None) -> Plan:
        """The plan computing ``outputs`` (default: the pipeline's); UsageError if unknown."""
        return self.plan if not outputs else self.executor.plan(outputs)

    def run(self, tables: Tables, rows: int, plan: Plan) -> dict[str, np.ndarray]:
        """``plan``'s outputs as numpy arrays; ModelError when a node fails.

        Zero rows answer zero rows of each output without calling anything: models refuse
        empty input (scikit-learn raises), and a request of no rows has nothing to score.
        """
        if rows == 0:
            return {name: _no_rows(self.executor.dtype(name)) for name in plan.outputs}
        values = self.executor.run_columns(tables, rows, plan)
        return {name: values[name] for name in plan.outputs}

    def calls_endpoint(self, plan: Plan) -> bool:
        """Whether running ``plan`` calls a language model endpoint (it has an llm node)."""
        return bool(self._llm_nodes) and not self._llm_nodes.isdisjoint(plan.nodes)

    def run_recorded(
        self, tables: Tables, rows: int, plan: Plan, calls: list[dict[str, Any]]
    ) -> dict[str, np.ndarray]:
        """``run``, adding to ``calls`` a record of each llm call it makes, also when it fails.

        The records are ``shipyard.runtime.recorded_calls``'s (node, row, prompt hash and
        messages, settings, endpoint, model, tokens, latency, answer, error).
        """
        with recorded_calls() as made:
            try:
                return self.run(tables, rows, plan)
            finally:
                calls.extend(made)

    def typed(self, values: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        """Outputs in the dict format's typed form ``{name: {"type", "values"}}``."""
        return {name: self.executor.typed(name, array) for name, array in values.items()}

    def warm_up(self, repeat: int = 3) -> float | None:
        """Run the bundle's example input ``repeat`` times; the best time in seconds.

        Returns None when the bundle carries no example input (exported without
        reference data). Raises what a request would (SchemaError, ModelError).
        """
        if self.example_input is None:
            return None
        best = math.inf
        for _ in range(repeat):
            started = time.perf_counter()
            tables, rows = self.dataset(self.example_input)
            self.typed(self.run(tables, rows, self.plan))
            best = min(best, time.perf_counter() - started)
        self.warm_seconds = best
        return best

    def __repr__(self) -> str:
        return f"ModelRunner({self.model!r}, {self.version!r})"


def _bounds(specs: Sequence[ColumnSpec]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column [min, max] as column vectors that broadcast over a (columns, rows) block."""
    low = np.array([-np.inf if c.min is None else c.min for c in specs], dtype=np.float64)
    high = np.array([np.inf if c.max is None else c.max for c in specs], dtype=np.float64)
    return low[:, None], high[:, None]


def _no_rows(dtype: str) -> np.ndarray:
    """An output column of ``dtype`` holding no rows, as the executor would return it."""
    if dtype == "list[float64]":
        return np.empty((0, 0), dtype=np.float64)
    numpy_type: Any = {"string": object, "datetime": "datetime64[us]"}.get(dtype, dtype)
    return np.empty(0, dtype=numpy_type)
