"""Bad input is refused with an error that names its table, column and (0-based) row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shipyard import Column, Pipeline, Table, feature
from shipyard.errors import (
    MissingColumn,
    NullValue,
    OutOfRange,
    SchemaError,
    UnknownTable,
    WrongType,
)
from shipyard.runtime import encode


def identity(x: Any) -> Any:
    return x


def total(amount: Any, age: Any) -> Any:
    return amount + age


LOANS = Table(
    "loans",
    [
        Column("amount", "float64", min=0.0, max=1000.0),
        Column("rate", "float64", nullable=True),
        Column("count", "int64", min=0, max=10),
        Column("grade", "string", categories=["A", "B", "C"]),
        Column("active", "bool"),
        Column("flagged", "bool", nullable=True),
        Column("opened", "datetime"),
        Column("note", "string", nullable=True),
        Column("score", "int64", nullable=True),
        Column("level", "int64", categories=[1, 2, 3]),
    ],
)
PEOPLE = Table("people", [Column("age", "float64")])

# Each column has a pass-through node "<column>_out" of its own type.
OUTPUTS = {c.name: c.type for c in LOANS.columns}


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    nodes = [
        feature(identity, name=f"{name}_out", inputs={"x": f"loans.{name}"}, dtype=dtype)
        for name, dtype in OUTPUTS.items()
    ]
    score_as_float = feature(identity, name="score_as_float", inputs={"x": "loans.score"})
    return Pipeline(
        "lending", "1.0.0", inputs=[LOANS, PEOPLE], nodes=[*nodes, score_as_float, feature(total)]
    )


def _run(pipeline: Pipeline, column: str, values: list[Any]) -> dict[str, Any]:
    return pipeline.run({"loans": {column: values}}, outputs=[f"{column}_out"])[f"{column}_out"]


def _where(error: SchemaError) -> tuple[str | None, str | None, int | None]:
    return error.table, error.column, error.row


# -- tables and columns ------------------------------------------------------------------


def test_unknown_table_is_named(pipeline: Pipeline) -> None:
    with pytest.raises(UnknownTable) as caught:
        pipeline.run({"loans": {"amount": [1.0]}, "lenders": {"x": [1]}}, outputs=["amount_out"])
    assert caught.value.table == "lenders"
    assert "table 'lenders'" in str(caught.value)
    assert "loans" in str(caught.value) and "people" in str(caught.value)  # what is declared


def test_missing_column_is_named(pipeline: Pipeline) -> None:
    with pytest.raises(MissingColumn) as caught:
        pipeline.run({"loans": {"rate": [1.0]}}, outputs=["amount_out"])
    assert _where(caught.value) == ("loans", "amount", None)
    assert "table 'loans', column 'amount'" in str(caught.value)


def test_missing_table_names_a_column_it_needed(pipeline: Pipeline) -> None:
    with pytest.raises(MissingColumn) as caught:
        pipeline.run({"loans": {"amount": [1.0]}}, outputs=["total"])
    assert _where(caught.value) == ("people", "age", None)


def test_extra_undeclared_columns_are_ignored(pipeline: Pipeline) -> None:
    result = pipeline.run({"loans": {"amount": [1.0], "colour": ["red"]}}, outputs=["amount_out"])
    assert result["amount_out"]["values"] == [1.0]


def test_tables_of_different_lengths_are_refused_naming_both(pipeline: Pipeline) -> None:
    data = {"loans": {"amount": [1.0, 2.0, 3.0]}, "people": {"age": [30.0, 40.0]}}
    with pytest.raises(SchemaError) as caught:
        pipeline.run(data, outputs=["total"])
    message = str(caught.value)
    assert caught.value.table == "people" and caught.value.column == "age"
    assert "has 2 rows" in message
    assert "'loans.amount' has 3" in message


def test_columns_of_different_lengths_in_one_table_are_refused(pipeline: Pipeline) -> None:
    with pytest.raises(SchemaError, match=r"column 'rate': has 1 rows but 'loans\.amount' has 2"):
        pipeline.run({"loans": {"amount": [1.0, 2.0], "rate": [0.1]}}, outputs=["amount_out"])


def test_tables_of_equal_length_are_joined_row_by_row(pipeline: Pipeline) -> None:
    data = {"loans": {"amount": [1.0, 2.0]}, "people": {"age": [30.0, 40.0]}}
    assert pipeline.run(data, outputs=["total"])["total"]["values"] == [31.0, 42.0]


# -- wrong types ---------------------------------------------------------------------------


def test_string_in_a_float_column_names_its_row(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "amount", [1.0, 2.0, "3.5", 4.0])
    assert _where(caught.value) == ("loans", "amount", 2)
    assert "table 'loans', column 'amount', row 2" in str(caught.value)
    assert "'3.5'" in str(caught.value)


def test_string_after_a_null_in_a_float_column_names_its_row(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "rate", [None, 2.0, "x"])
    assert _where(caught.value) == ("loans", "rate", 2)


def test_string_in_a_numpy_float_column_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        pipeline.run({"loans": {"amount": np.array(["a", "b"])}}, outputs=["amount_out"])
    assert _where(caught.value)[:2] == ("loans", "amount")


def test_int_column_given_a_fraction_names_the_value_and_row(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "count", [1, 2, 1.5])
    assert _where(caught.value) == ("loans", "count", 2)
    assert str(caught.value).endswith("expected int64, got 1.5")


def test_int_column_accepts_whole_floats(pipeline: Pipeline) -> None:
    assert _run(pipeline, "count", [1.0, 2]) == {"type": "int64", "values": [1, 2]}


def test_number_columns_accept_lists_of_numpy_scalars(pipeline: Pipeline) -> None:
    assert _run(pipeline, "count", list(np.array([1, 2])))["values"] == [1, 2]
    assert _run(pipeline, "amount", list(np.array([1.5, 2.0])))["values"] == [1.5, 2.0]


def test_int_column_refuses_a_numpy_fraction_rather_than_truncating(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "count", [np.int64(1), np.float64(1.5)])
    assert _where(caught.value) == ("loans", "count", 1)


def test_int_column_refuses_infinity(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "count", [1, float("inf")])
    assert _where(caught.value) == ("loans", "count", 1)


def test_int_column_keeps_large_values_exact(pipeline: Pipeline) -> None:
    big = 2**62 + 1
    assert _run(pipeline, "score", [big, 0])["values"] == [big, 0]


def test_int_column_refuses_a_value_beyond_int64(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "score", [1, 2**64 - 1])
    assert _where(caught.value) == ("loans", "score", 1)


@pytest.mark.parametrize("column", ["amount", "count"])
def test_number_column_refuses_a_bool(pipeline: Pipeline, column: str) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, column, [1, True])
    assert _where(caught.value) == ("loans", column, 1)
    assert "bool" in str(caught.value)


def test_bool_column_given_a_number_names_its_row(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "active", [True, False, 1])
    assert _where(caught.value) == ("loans", "active", 2)
    assert "expected bool, got int 1" in str(caught.value)


def test_bool_column_given_a_numpy_int_array_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        pipeline.run({"loans": {"active": np.array([1, 0])}}, outputs=["active_out"])
    assert _where(caught.value)[:2] == ("loans", "active")


def test_string_column_given_a_number_names_its_row(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "note", ["a", 7])
    assert _where(caught.value) == ("loans", "note", 1)


def test_typed_form_declaring_another_type_is_refused(pipeline: Pipeline) -> None:
    data = {"loans": {"amount": {"type": "string", "values": ["1.0"]}}}
    with pytest.raises(WrongType) as caught:
        pipeline.run(data, outputs=["amount_out"])
    assert _where(caught.value) == ("loans", "amount", None)
    assert "declared as 'string' but the pipeline expects float64" in str(caught.value)


def test_typed_column_without_values_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(SchemaError, match=r"column 'amount': a typed column needs a 'values'"):
        pipeline.run({"loans": {"amount": {"type": "float64"}}}, outputs=["amount_out"])


def test_column_values_that_are_not_a_list_are_refused(pipeline: Pipeline) -> None:
    with pytest.raises(WrongType) as caught:
        pipeline.run({"loans": {"amount": 3.0}}, outputs=["amount_out"])
    assert _where(caught.value) == ("loans", "amount", None)


# -- nulls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("amount", [1.0, None]),
        ("amount", [1.0, float("nan")]),
        ("count", [1, None]),
        ("grade", ["A", None]),
        ("active", [True, None]),
        ("opened", ["2024-01-01", None]),
    ],
)
def test_null_in_a_column_that_is_not_nullable_names_its_row(
    pipeline: Pipeline, column: str, values: list[Any]
) -> None:
    with pytest.raises(NullValue) as caught:
        _run(pipeline, column, values)
    assert _where(caught.value) == ("loans", column, 1)


def test_null_in_a_record_without_the_key_names_its_row(pipeline: Pipeline) -> None:
    with pytest.raises(NullValue) as caught:
        pipeline.run({"loans": [{"amount": 1.0}, {"rate": 0.1}]}, outputs=["amount_out"])
    assert _where(caught.value) == ("loans", "amount", 1)


def test_null_in_a_nullable_float_column_comes_back_as_none(pipeline: Pipeline) -> None:
    assert _run(pipeline, "rate", [0.5, None, 0.25]) == {
        "type": "float64",
        "values": [0.5, None, 0.25],
    }


def test_null_in_a_nullable_string_column_comes_back_as_none(pipeline: Pipeline) -> None:
    assert _run(pipeline, "note", ["late", None]) == {"type": "string", "values": ["late", None]}


def test_null_in_a_nullable_int_column_reaches_a_feature_as_nan(pipeline: Pipeline) -> None:
    result = pipeline.run({"loans": {"score": [3, None]}}, outputs=["score_as_float"])
    assert result["score_as_float"] == {"type": "float64", "values": [3.0, None]}


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_null_in_a_nullable_int_column_comes_back_as_none(pipeline: Pipeline) -> None:
    assert _run(pipeline, "score", [3, None]) == {"type": "int64", "values": [3, None]}


def test_null_in_a_nullable_bool_column_comes_back_as_none(pipeline: Pipeline) -> None:
    assert _run(pipeline, "flagged", [True, None]) == {"type": "bool", "values": [True, None]}


# -- ranges and categories -----------------------------------------------------------------


def test_value_below_min_names_value_range_and_row(pipeline: Pipeline) -> None:
    with pytest.raises(OutOfRange) as caught:
        _run(pipeline, "amount", [5.0, -1.0])
    assert _where(caught.value) == ("loans", "amount", 1)
    assert str(caught.value).endswith("-1.0 is outside the allowed range [0.0, 1000.0]")


def test_value_above_max_names_value_range_and_row(pipeline: Pipeline) -> None:
    with pytest.raises(OutOfRange) as caught:
        _run(pipeline, "count", [0, 10, 11])
    assert _where(caught.value) == ("loans", "count", 2)
    assert str(caught.value).endswith("11 is outside the allowed range [0, 10]")


def test_values_on_the_bounds_are_accepted(pipeline: Pipeline) -> None:
    assert _run(pipeline, "amount", [0.0, 1000.0])["values"] == [0.0, 1000.0]


def test_category_not_allowed_names_it_and_its_row(pipeline: Pipeline) -> None:
    with pytest.raises(OutOfRange) as caught:
        _run(pipeline, "grade", ["A", "C", "D"])
    assert _where(caught.value) == ("loans", "grade", 2)
    assert "'D' is not an allowed category ('A', 'B', 'C')" in str(caught.value)


def test_int_category_not_allowed_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(OutOfRange) as caught:
        _run(pipeline, "level", [1, 4])
    assert _where(caught.value) == ("loans", "level", 1)


def test_allowed_categories_pass(pipeline: Pipeline) -> None:
    assert _run(pipeline, "grade", ["A", "B"])["values"] == ["A", "B"]


# -- datetimes -------------------------------------------------------------------------------


def test_datetime_parses_iso_8601_with_z_and_offsets_as_utc(pipeline: Pipeline) -> None:
    values = ["2024-03-01T12:30:00Z", "2024-03-01T12:30:00+02:00", "2024-03-01"]
    assert _run(pipeline, "opened", values) == {
        "type": "datetime",
        "values": [
            "2024-03-01T12:30:00.000000",
            "2024-03-01T10:30:00.000000",
            "2024-03-01T00:00:00.000000",
        ],
    }


@pytest.mark.parametrize("garbage", ["yesterday", "2024-13-01", 20240301])
def test_datetime_refuses_garbage_naming_its_row(pipeline: Pipeline, garbage: Any) -> None:
    with pytest.raises(WrongType) as caught:
        _run(pipeline, "opened", ["2024-03-01T00:00:00Z", garbage])
    assert _where(caught.value) == ("loans", "opened", 1)
    assert "ISO 8601" in str(caught.value)


# -- encoding --------------------------------------------------------------------------------


def test_encode_turns_nan_into_none() -> None:
    assert encode("float64", np.array([1.5, np.nan])) == {"type": "float64", "values": [1.5, None]}
    nested = encode("list[float64]", np.array([[1.0, np.nan], [0.5, 0.5]]))
    assert nested == {"type": "list[float64]", "values": [[1.0, None], [0.5, 0.5]]}


def test_encode_of_a_nullable_int_column_gives_ints_and_none() -> None:
    assert encode("int64", np.array([3.0, np.nan])) == {"type": "int64", "values": [3, None]}


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("rate", [0.5, None, 0.25]),
        ("score", [3, 2**62 + 1]),
        ("note", ["x", None, ""]),
        ("opened", ["2024-03-01T12:30:00.000000", "1999-12-31T23:59:59.000001"]),
        ("active", [True, False, True]),
    ],
)
def test_output_fed_back_as_typed_input_round_trips(
    pipeline: Pipeline, column: str, values: list[Any]
) -> None:
    first = _run(pipeline, column, values)
    assert first["values"] == values
    again = pipeline.run({"loans": {column: first}}, outputs=[f"{column}_out"])
    assert again[f"{column}_out"] == first
