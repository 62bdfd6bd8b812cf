"""``ModelRunner``'s decoding: the stacked fast path agrees with the runtime's full validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shipyard.errors import MissingColumn, OutOfRange, SchemaError, UnknownTable, WrongType
from shipyard.runtime._dataset import parse_dataset
from shipyard.serving import ModelRunner

from .conftest import rows_of


def same_as_runtime(runner: ModelRunner, data: Any) -> None:
    fast, rows = runner.dataset(data, bool_free=True)
    slow, slow_rows = parse_dataset(data, runner.tables, runner.plan.columns)
    assert rows == slow_rows
    assert fast.keys() == slow.keys()
    for table in fast:
        assert fast[table].keys() == slow[table].keys()
        for column, array in fast[table].items():
            assert array.dtype == slow[table][column].dtype
            np.testing.assert_array_equal(array, slow[table][column])


def test_plain_columns_ints_and_the_typed_form_decode_as_the_runtime_does(
    demo_runner: ModelRunner,
) -> None:
    rows = rows_of(demo_runner, 3)
    same_as_runtime(demo_runner, rows)
    same_as_runtime(demo_runner, rows["tumours"])  # no table level
    same_as_runtime(demo_runner, demo_runner.example_input)  # typed
    ints = {"tumours": {k: [int(v[0]) + 1] for k, v in rows["tumours"].items()}}
    same_as_runtime(demo_runner, ints)


def test_mixed_column_types_decode_as_the_runtime_does(toy_runners: dict[str, ModelRunner]) -> None:
    same_as_runtime(
        toy_runners["tensors"], {"tensors": {"a": ["x", "y"], "b": [1, 2], "c": [[1.0], [2.0]]}}
    )


@pytest.mark.parametrize(
    ("change", "error", "row"),
    [
        ({"mean_radius": [1.0, -5.0]}, OutOfRange, 1),
        ({"mean_radius": [1.0, True]}, WrongType, 1),
        ({"mean_radius": [1.0, None]}, SchemaError, 1),
        ({"mean_radius": [1.0]}, SchemaError, None),
    ],
)
def test_bad_values_leave_the_fast_path_and_are_named(
    demo_runner: ModelRunner, change: dict[str, Any], error: type, row: int | None
) -> None:
    rows = rows_of(demo_runner, 2)
    rows["tumours"].update(change)
    with pytest.raises(error) as raised:
        demo_runner.dataset(rows, bool_free="True" not in repr(change))
    assert raised.value.table == "tumours" and raised.value.column is not None
    assert raised.value.row == row


def test_missing_columns_and_unknown_tables_are_named(demo_runner: ModelRunner) -> None:
    rows = rows_of(demo_runner)
    del rows["tumours"]["mean_area"]
    with pytest.raises(MissingColumn, match="mean_area"):
        demo_runner.dataset(rows, bool_free=True)
    with pytest.raises(UnknownTable):
        demo_runner.dataset({"patients": {"x": [1.0]}}, bool_free=True)


def test_warm_up_runs_the_example_input(demo_runner: ModelRunner) -> None:
    assert demo_runner.warm_seconds is not None and demo_runner.warm_seconds > 0
    assert [t.name for t in demo_runner.outputs] == ["p_malignant", "decision"]
    assert demo_runner.outputs[1].datatype == "BYTES"
