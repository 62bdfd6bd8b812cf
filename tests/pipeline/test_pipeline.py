"""Defining pipelines: tables, graph checks, running sub-graphs, input forms and model outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression

from shipyard import Column, Pipeline, Table, feature, model, rule
from shipyard.errors import GraphError, ModelError, PipelineError

# -- tables and columns ------------------------------------------------------------------


def test_column_with_an_unknown_type_is_refused_naming_it() -> None:
    with pytest.raises(GraphError, match=r"column 'income': unknown type 'float'"):
        Column("income", "float")


def test_column_types_given_as_a_mapping_are_checked_too() -> None:
    with pytest.raises(GraphError, match=r"column 'age': unknown type 'integer'"):
        Table("people", {"age": "integer"})


def test_column_with_min_above_max_is_refused() -> None:
    with pytest.raises(GraphError, match=r"column 'age': min 10 is greater than max 5"):
        Column("age", "int64", min=10, max=5)


def test_column_bounds_must_be_numbers() -> None:
    with pytest.raises(GraphError, match=r"column 'age': min"):
        Column("age", "int64", min="0")
    with pytest.raises(GraphError, match=r"column 'age': max"):
        Column("age", "int64", max=True)


def test_min_max_on_a_string_column_is_refused() -> None:
    with pytest.raises(GraphError, match="min/max apply to int64 and float64"):
        Column("grade", "string", min=0)


def test_categories_on_a_float_column_are_refused() -> None:
    with pytest.raises(GraphError, match=r"column 'score': categories apply to string"):
        Column("score", "float64", categories=[0.5, 1.0])


def test_categories_are_kept_as_given() -> None:
    column = Column("grade", "string", categories=["A", "B"])
    assert column.categories == ("A", "B")
    assert column.to_json()["categories"] == ["A", "B"]


def test_table_with_duplicate_columns_is_refused_naming_table_and_column() -> None:
    with pytest.raises(GraphError, match=r"table 'people': duplicate column 'age'"):
        Table("people", [Column("age", "int64"), Column("age", "float64")])


def test_table_name_must_be_an_identifier() -> None:
    with pytest.raises(GraphError, match=r"table name 'my table'"):
        Table("my table", {"a": "float64"})


def test_table_without_columns_is_refused() -> None:
    with pytest.raises(GraphError, match="declares no columns"):
        Table("empty", [])


def test_column_name_with_a_dot_is_refused() -> None:
    with pytest.raises(GraphError, match=r"'a\.b'"):
        Column("a.b", "float64")


# -- graph checks ------------------------------------------------------------------------

APPLICANTS = Table(
    "applicants",
    [Column("income", "float64"), Column("debt", "float64"), Column("grade", "string")],
)
LOANS = Table("loans", [Column("amount", "float64"), Column("income", "float64")])


def identity(x: Any) -> Any:
    return x


def test_unknown_reference_names_node_argument_and_target() -> None:
    node = feature(identity, name="copied", inputs={"x": "salary"})
    with pytest.raises(GraphError) as caught:
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[node])
    message = str(caught.value)
    assert "feature 'copied' input 'x'" in message
    assert "'salary'" in message


def test_a_models_unknown_feature_is_named_by_the_users_name_not_a_slot() -> None:
    fitted = LinearRegression().fit([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]], [1.0, 2.0, 3.0])
    node = model("m", fitted, features=["income", "nope"])
    with pytest.raises(GraphError) as caught:
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[node])
    assert str(caught.value) == ("model 'm' feature 'nope' is neither a node nor an input column")


def test_unknown_table_or_column_in_a_dotted_reference_is_named() -> None:
    bad_table = feature(identity, name="a", inputs={"x": "people.income"})
    with pytest.raises(GraphError, match=r"feature 'a' input 'x' refers to unknown table 'people'"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[bad_table])
    bad_column = feature(identity, name="b", inputs={"x": "applicants.salary"})
    with pytest.raises(GraphError, match=r"unknown column 'applicants\.salary'"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[bad_column])


def test_cycle_is_refused_showing_its_path() -> None:
    def first(second: Any) -> Any:
        return second + 1

    def second(first: Any) -> Any:
        return first + 1

    with pytest.raises(GraphError, match=r"has a cycle: first -> second -> first"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[feature(first), feature(second)])


def test_duplicate_node_name_is_refused() -> None:
    a = feature(identity, name="same", inputs={"x": "income"})
    b = feature(identity, name="same", inputs={"x": "debt"})
    with pytest.raises(GraphError, match=r"pipeline 'p': duplicate node name 'same'"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[a, b])


def test_add_refuses_a_duplicate_and_keeps_the_first() -> None:
    pipeline = Pipeline("p", "1.0.0", inputs=[APPLICANTS])
    pipeline.add(feature(identity, name="same", inputs={"x": "income"}))
    with pytest.raises(GraphError, match="duplicate node name 'same'"):
        pipeline.add(feature(identity, name="same", inputs={"x": "debt"}))
    assert pipeline.references("same") == ["applicants.income"]


def test_node_named_like_a_table_is_refused() -> None:
    node = feature(identity, name="applicants", inputs={"x": "income"})
    with pytest.raises(GraphError, match=r"node 'applicants' has the name of an input table"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[node])


def test_bare_column_held_by_two_tables_is_ambiguous_and_lists_the_choices() -> None:
    def share(income: Any) -> Any:
        return income

    with pytest.raises(GraphError) as caught:
        Pipeline("p", "1.0.0", inputs=[APPLICANTS, LOANS], nodes=[feature(share)])
    message = str(caught.value)
    assert "feature 'share' input 'income'" in message
    assert "ambiguous" in message
    assert "applicants.income" in message and "loans.income" in message


def test_qualified_reference_resolves_an_ambiguous_column() -> None:
    node = feature(identity, name="share", inputs={"x": "loans.income"})
    pipeline = Pipeline("p", "1.0.0", inputs=[APPLICANTS, LOANS], nodes=[node])
    assert pipeline.references("share") == ["loans.income"]


def test_string_column_fed_to_a_numeric_model_is_a_type_clash() -> None:
    estimator = LinearRegression().fit(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), [0, 1, 2])
    node = model("score", estimator, features=["income", "grade"])
    with pytest.raises(GraphError) as caught:
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[node])
    message = str(caught.value)
    assert "type clash" in message
    assert "model 'score'" in message
    assert "'applicants.grade' is string" in message


def test_unknown_output_is_refused_naming_it() -> None:
    node = feature(identity, name="copied", inputs={"x": "income"})
    with pytest.raises(GraphError, match=r"output 'missing' is not a node"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[node], outputs=["missing"])


def test_set_outputs_refuses_an_unknown_node_and_keeps_the_previous_outputs() -> None:
    node = feature(identity, name="copied", inputs={"x": "income"})
    pipeline = Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[node], outputs=["copied"])
    with pytest.raises(GraphError, match="'missing'"):
        pipeline.set_outputs("missing")
    assert pipeline.outputs == ["copied"]


@pytest.mark.parametrize("version", ["1.0.0-beta", "v1", "", "1..0", "1.0.0 "])
def test_bad_version_string_is_refused(version: str) -> None:
    with pytest.raises(GraphError, match=r"pipeline 'p': version .* must look like 1\.2\.0"):
        Pipeline("p", version, inputs=[APPLICANTS])


@pytest.mark.parametrize("version", ["1", "1.2.0", "2024.1.15.3", "1.0rc1"])
def test_good_version_strings_are_accepted(version: str) -> None:
    assert Pipeline("p", version, inputs=[APPLICANTS]).version == version


def test_duplicate_input_table_is_refused() -> None:
    with pytest.raises(GraphError, match=r"duplicate input table 'applicants'"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS, APPLICANTS])


def test_node_with_an_unknown_output_type_is_refused() -> None:
    with pytest.raises(GraphError, match=r"feature 'copied': unknown type 'float'"):
        feature(identity, name="copied", dtype="float")


def test_graph_errors_are_pipeline_errors() -> None:
    assert issubclass(GraphError, PipelineError)


def test_outputs_default_to_nodes_nothing_else_reads() -> None:
    def doubled(income: Any) -> Any:
        return income * 2

    def quadrupled(doubled: Any) -> Any:
        return doubled * 2

    pipeline = Pipeline(
        "p", "1.0.0", inputs=[APPLICANTS], nodes=[feature(doubled), feature(quadrupled)]
    )
    assert pipeline.outputs == ["quadrupled"]


# -- running -----------------------------------------------------------------------------


def ratio(income: Any, debt: Any) -> Any:
    return debt / income


def explode(grade: Any) -> Any:
    raise RuntimeError("explode was called")


def flag(ratio: Any) -> Any:
    return np.where(ratio > 0.5, "high", "low")


@pytest.fixture(scope="module")
def flagging() -> Pipeline:
    return Pipeline(
        "flagging",
        "1.0.0",
        inputs=[APPLICANTS],
        nodes=[feature(ratio), rule(flag), feature(explode)],
        outputs=["flag", "explode"],
    )


ROWS = {"applicants": {"income": [10.0, 20.0], "debt": [8.0, 2.0], "grade": ["A", "B"]}}


def test_run_returns_intermediate_nodes_when_asked(flagging: Pipeline) -> None:
    result = flagging.run(ROWS, outputs=["ratio", "flag"])
    assert result == {
        "ratio": {"type": "float64", "values": [0.8, 0.1]},
        "flag": {"type": "string", "values": ["high", "low"]},
    }


def test_run_computes_only_the_sub_graph_of_the_requested_outputs(flagging: Pipeline) -> None:
    # The default outputs include 'explode', which fails when called ...
    with pytest.raises(ModelError, match="feature 'explode' failed"):
        flagging.run(ROWS)
    # ... so these runs prove it is not called, nor its input 'grade' required.
    assert flagging.run(ROWS, outputs=["flag"])["flag"]["values"] == ["high", "low"]
    without_grade = {"applicants": {"income": [10.0], "debt": [8.0]}}
    assert flagging.run(without_grade, outputs=["ratio"])["ratio"]["values"] == [0.8]


def test_pipeline_added_node_changes_what_run_computes() -> None:
    pipeline = Pipeline("p", "1.0.0", inputs=[APPLICANTS], nodes=[feature(ratio)])
    assert set(pipeline.run(ROWS)) == {"ratio"}
    pipeline.add(rule(flag))
    assert pipeline.run(ROWS) == {"flag": {"type": "string", "values": ["high", "low"]}}


# -- input forms -------------------------------------------------------------------------


def test_every_input_form_gives_the_same_result(flagging: Pipeline) -> None:
    columns = ROWS["applicants"]
    typed = {
        "income": {"type": "float64", "values": columns["income"]},
        "debt": {"type": "float64", "values": columns["debt"]},
        "grade": {"type": "string", "values": columns["grade"]},
    }
    records = [
        {"income": 10.0, "debt": 8.0, "grade": "A"},
        {"income": 20.0, "debt": 2.0, "grade": "B"},
    ]
    forms = {
        "typed": {"applicants": typed},
        "columns": {"applicants": columns},
        "records": {"applicants": records},
        "bare typed": typed,
        "bare columns": columns,
        "bare records": records,
        "numpy columns": {"applicants": {k: np.asarray(v) for k, v in columns.items()}},
    }
    outputs = ["ratio", "flag"]
    expected = flagging.run(ROWS, outputs=outputs)
    assert expected["ratio"]["values"] == [0.8, 0.1]
    for form, data in forms.items():
        assert flagging.run(data, outputs=outputs) == expected, form


def test_records_with_a_missing_key_give_a_null() -> None:
    nullable = Table("t", [Column("a", "float64"), Column("b", "float64", nullable=True)])

    def total(a: Any, b: Any) -> Any:
        return a + np.nan_to_num(b)

    pipeline = Pipeline("p", "1.0.0", inputs=[nullable], nodes=[feature(total)])
    result = pipeline.run({"t": [{"a": 1.0, "b": 2.0}, {"a": 5.0}]})
    assert result["total"]["values"] == [3.0, 5.0]


# -- model outputs -----------------------------------------------------------------------


def _standardised(x: np.ndarray) -> np.ndarray:
    # Scaled inputs let LogisticRegression converge in a few milliseconds.
    return (x - x.mean(axis=0)) / x.std(axis=0)


CANCER = load_breast_cancer()
CANCER_COLUMNS = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area"]
CANCER_TABLE = Table("tumours", [Column(n, "float64") for n in CANCER_COLUMNS])
CANCER_X = _standardised(CANCER.data[:, :4])
WINE = load_wine()
WINE_X = _standardised(WINE.data)
WINE_COLUMNS = [f"x{i}" for i in range(WINE_X.shape[1])]
WINE_TABLE = Table("wines", [Column(n, "float64") for n in WINE_COLUMNS])


def _tumour_rows(count: int = 6) -> dict[str, Any]:
    rows = CANCER_X[:: len(CANCER_X) // count][:count]
    return {"tumours": {n: rows[:, i].tolist() for i, n in enumerate(CANCER_COLUMNS)}}


@pytest.fixture(scope="module")
def binary_classifier() -> LogisticRegression:
    return LogisticRegression().fit(CANCER_X, CANCER.target)


@pytest.fixture(scope="module")
def wine_classifier() -> LogisticRegression:
    return LogisticRegression().fit(WINE_X, WINE.target)


def _wine_rows() -> tuple[np.ndarray, dict[str, Any]]:
    rows = WINE_X[[0, 70, 140]]
    return rows, {"wines": {n: rows[:, i].tolist() for i, n in enumerate(WINE_COLUMNS)}}


def _single_model(node: Any, table: Table = CANCER_TABLE) -> Pipeline:
    return Pipeline("models", "1.0.0", inputs=[table], nodes=[node])


def test_binary_probability_is_that_of_the_last_class_by_default(
    binary_classifier: LogisticRegression,
) -> None:
    data = _tumour_rows()
    node = model("p", binary_classifier, features=CANCER_COLUMNS)
    assert node.output == "probability"
    result = _single_model(node).run(data)["p"]
    x = np.column_stack([data["tumours"][n] for n in CANCER_COLUMNS])
    assert result["type"] == "float64"
    assert result["values"] == pytest.approx(binary_classifier.predict_proba(x)[:, 1].tolist())


def test_positive_class_zero_gives_the_probability_of_class_zero(
    binary_classifier: LogisticRegression,
) -> None:
    data = _tumour_rows()
    node = model("p", binary_classifier, features=CANCER_COLUMNS, positive_class=0)
    values = _single_model(node).run(data)["p"]["values"]
    x = np.column_stack([data["tumours"][n] for n in CANCER_COLUMNS])
    expected = binary_classifier.predict_proba(x)[:, 0]
    assert values == pytest.approx(expected.tolist())
    # Distinct from the default, so a flip that is ignored is caught.
    assert not np.allclose(expected, 1 - expected)


def test_positive_class_must_be_one_of_the_classes(binary_classifier: LogisticRegression) -> None:
    with pytest.raises(GraphError, match=r"model 'p': positive_class 'yes' is not one of \[0, 1\]"):
        model("p", binary_classifier, features=CANCER_COLUMNS, positive_class="yes")


def test_string_class_labels_come_out_as_strings() -> None:
    labels = np.where(CANCER.target == 0, "malignant", "benign")
    classifier = LogisticRegression().fit(CANCER_X, labels)
    node = model("diagnosis", classifier, features=CANCER_COLUMNS, output="label")
    assert node.dtype == "string"
    data = _tumour_rows()
    result = _single_model(node).run(data)["diagnosis"]
    x = np.column_stack([data["tumours"][n] for n in CANCER_COLUMNS])
    assert result["type"] == "string"
    assert result["values"] == classifier.predict(x).tolist()
    assert all(isinstance(v, str) for v in result["values"])
    assert set(result["values"]) == {"malignant", "benign"}


def test_regressor_value_output() -> None:
    diabetes = load_diabetes()
    names = [f"x{i}" for i in range(diabetes.data.shape[1])]
    regressor = LinearRegression().fit(diabetes.data, diabetes.target)
    node = model("progression", regressor, features=names)
    assert node.output == "value"
    table = Table("patients", [Column(n, "float64") for n in names])
    rows = diabetes.data[:4]
    data = {"patients": {n: rows[:, i].tolist() for i, n in enumerate(names)}}
    result = _single_model(node, table).run(data)["progression"]
    assert result["type"] == "float64"
    assert result["values"] == pytest.approx(regressor.predict(rows).tolist())


def test_multiclass_probability_is_a_list_per_row(wine_classifier: LogisticRegression) -> None:
    node = model("cultivar", wine_classifier, features=WINE_COLUMNS)
    assert node.dtype == "list[float64]"
    rows, data = _wine_rows()
    result = _single_model(node, WINE_TABLE).run(data)["cultivar"]
    assert result["type"] == "list[float64]"
    assert len(result["values"]) == 3
    assert all(len(row) == 3 for row in result["values"])
    assert np.asarray(result["values"]) == pytest.approx(wine_classifier.predict_proba(rows))
    assert result["classes"] == [0, 1, 2]  # the column each probability belongs to


def test_multiclass_label_output_keeps_integer_classes(
    wine_classifier: LogisticRegression,
) -> None:
    node = model("cultivar", wine_classifier, features=WINE_COLUMNS, output="label")
    rows, data = _wine_rows()
    result = _single_model(node, WINE_TABLE).run(data)["cultivar"]
    assert result == {"type": "int64", "values": wine_classifier.predict(rows).tolist()}
    assert result["values"] == [0, 1, 2]


def test_model_output_feeds_a_rule(binary_classifier: LogisticRegression) -> None:
    def verdict(p: Any) -> Any:
        return np.where(p > 0.5, "benign", "malignant")

    pipeline = Pipeline(
        "chain",
        "1.0.0",
        inputs=[CANCER_TABLE],
        nodes=[model("p", binary_classifier, features=CANCER_COLUMNS), rule(verdict)],
    )
    data = _tumour_rows()
    result = pipeline.run(data, outputs=["p", "verdict"])
    expected = ["benign" if p > 0.5 else "malignant" for p in result["p"]["values"]]
    assert result["verdict"]["values"] == expected


def test_model_with_the_wrong_number_of_features_is_refused(
    binary_classifier: LogisticRegression,
) -> None:
    with pytest.raises(GraphError, match="fitted on 4 features but 3 are given"):
        model("p", binary_classifier, features=CANCER_COLUMNS[:3])


def test_model_fitted_without_names_needs_features(binary_classifier: LogisticRegression) -> None:
    with pytest.raises(GraphError, match=r"model 'p': say which inputs"):
        model("p", binary_classifier)


def test_probability_from_a_regressor_is_refused() -> None:
    regressor = LinearRegression().fit(CANCER_X, CANCER.target)
    with pytest.raises(GraphError, match="needs a classifier with predict_proba"):
        model("p", regressor, features=CANCER_COLUMNS, output="probability")


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({"owner": "a", "purpose": "x"}, "unknown field.s. purpose"),
        ({"validation_metrics": {"auc": "high"}}, "validation_metrics must map metric names"),
        ({"approvals": "MRC-1"}, "approvals must be a list of text"),
        ("owner: me", "must be a mapping"),
    ],
)
def test_a_bad_model_card_is_refused_naming_the_field(card: Any, message: str) -> None:
    from shipyard.errors import UsageError

    with pytest.raises(UsageError, match=rf"pipeline 'p': model card.*{message}"):
        Pipeline("p", "1.0.0", inputs=[APPLICANTS], model_card=card)
