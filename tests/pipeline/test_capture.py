"""Capturing feature functions: what a bundle can hold is kept; anything else is refused early."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy import log1p

from shipyard import Column, Pipeline, Table, feature, rule
from shipyard.errors import CaptureError, GraphError

LIMIT = 3.0  # a module-level constant: would not exist inside a bundle


def _scaled(x: Any) -> Any:  # a module-level helper: would not exist inside a bundle
    return x * 2


def _pipeline(*nodes: Any) -> Pipeline:
    table = Table("t", [Column("a", "float64"), Column("b", "float64", nullable=True)])
    return Pipeline("capture", "1.0.0", inputs=[table], nodes=list(nodes))


def test_reading_a_module_constant_is_refused_at_definition_naming_it() -> None:
    def over_limit(a: Any) -> Any:
        return a > LIMIT

    with pytest.raises(CaptureError, match=r"feature 'over_limit' reads the global 'LIMIT'"):
        feature(over_limit)


def test_calling_a_module_helper_is_refused_at_definition_naming_it() -> None:
    def doubled(a: Any) -> Any:
        return _scaled(a)

    with pytest.raises(CaptureError, match=r"reads the global '_scaled'"):
        feature(doubled)


def test_reading_a_closure_variable_is_refused_at_definition_naming_it() -> None:
    threshold = 2.0

    def above(a: Any) -> Any:
        return a > threshold

    with pytest.raises(CaptureError, match=r"closure variable\(s\) threshold"):
        feature(above)


def test_a_global_read_only_in_a_default_value_is_refused_at_definition() -> None:
    # The default is evaluated when the bundle loads the source, where LIMIT does not exist.
    def capped(a: Any, cap: float = LIMIT) -> Any:
        return np.minimum(a, cap)

    with pytest.raises(CaptureError, match=r"'LIMIT'"):
        feature(capped, params={"cap": 1.0})


def test_a_module_other_than_stdlib_or_numpy_is_refused_naming_it() -> None:
    def approximate(a: Any) -> Any:
        return pytest.approx(a)

    with pytest.raises(CaptureError, match=r"uses module 'pytest'"):
        feature(approximate)


def test_a_name_defined_nowhere_is_refused_naming_it() -> None:
    def typo(a: Any) -> Any:
        return a * scael  # noqa: F821

    with pytest.raises(CaptureError, match=r"reads the name 'scael', which is not defined"):
        feature(typo)


def test_pipeline_decorator_refuses_a_global_and_leaves_the_pipeline_unchanged() -> None:
    pipeline = _pipeline()

    def over_limit(a: Any) -> Any:
        return a > LIMIT

    with pytest.raises(CaptureError, match="LIMIT"):
        pipeline.feature(over_limit)
    assert pipeline.nodes == {}


def test_lambda_is_refused() -> None:
    with pytest.raises(CaptureError, match="lambda"):
        feature(lambda a: a + 1)
    with pytest.raises(CaptureError, match="lambda"):
        rule(name="flag")(lambda a: a > 1)


def test_a_feature_using_numpy_and_math_runs_in_the_bundle() -> None:
    def log_or_pi(a: Any) -> Any:
        return np.where(a > 0, np.log1p(np.abs(a)), math.pi)

    node = feature(log_or_pi)
    assert "import numpy as np" in node.source
    assert "import math" in node.source
    result = _pipeline(node).run({"t": {"a": [0.0, math.e - 1, -2.0]}})
    assert result["log_or_pi"]["values"] == pytest.approx([math.pi, 1.0, math.pi])


def test_functions_imported_by_name_from_numpy_are_carried_over() -> None:
    def softened(a: Any) -> Any:
        return log1p(a)

    node = feature(softened)
    assert "from numpy import log1p" in node.source
    result = _pipeline(node).run({"t": {"a": [0.0, math.e - 1]}})
    assert result["softened"]["values"] == pytest.approx([0.0, 1.0])


def test_captured_source_loads_on_its_own_despite_annotations() -> None:
    def typed(a: Any) -> Any:
        return a + 1

    node = feature(typed)
    namespace: dict[str, Any] = {}
    # dont_inherit: load it as a bundle would, without this module's __future__ flags.
    exec(compile(node.source, "source.py", "exec", dont_inherit=True), namespace)  # noqa: S102
    assert namespace["typed"](1) == 2


def test_params_are_passed_as_keyword_arguments() -> None:
    def clip(a: Any, low: float, high: float) -> Any:
        return np.clip(a, low, high)

    node = feature(clip, params={"low": 1.0, "high": 2.0})
    assert list(node.inputs) == ["a"]  # params are not inputs
    result = _pipeline(node).run({"t": {"a": [0.0, 1.5, 9.0]}})
    assert result["clip"]["values"] == [1.0, 1.5, 2.0]


def test_params_that_are_not_json_values_are_refused() -> None:
    def scale(a: Any, factor: Any) -> Any:
        return a * factor

    with pytest.raises(GraphError, match="params must be JSON"):
        feature(scale, params={"factor": np.array([1.0])})


def test_params_naming_no_argument_are_refused() -> None:
    def scale(a: Any) -> Any:
        return a

    with pytest.raises(GraphError, match="params names 'factor'"):
        feature(scale, params={"factor": 2.0})


def test_inputs_mapping_binds_an_argument_to_a_table_column() -> None:
    def difference(x: Any, b: Any) -> Any:
        return x - b

    # x is mapped explicitly; b is matched by its name.
    node = feature(difference, inputs={"x": "t.a"})
    pipeline = _pipeline(node)
    assert pipeline.references("difference") == ["t.a", "t.b"]
    result = pipeline.run({"t": {"a": [5.0, 7.0], "b": [1.0, 2.0]}})
    assert result["difference"]["values"] == [4.0, 5.0]


def test_inputs_mapping_naming_no_argument_is_refused() -> None:
    def identity(x: Any) -> Any:
        return x

    with pytest.raises(GraphError, match="inputs names 'y'"):
        feature(identity, inputs={"y": "t.a"})


def test_inputs_list_binds_arguments_in_order() -> None:
    def ratio(num: Any, den: Any) -> Any:
        return num / den

    node = feature(ratio, inputs=["t.b", "t.a"])
    result = _pipeline(node).run({"t": {"a": [2.0, 4.0], "b": [1.0, 1.0]}})
    assert result["ratio"]["values"] == [0.5, 0.25]


def test_feature_name_and_dtype_options() -> None:
    def is_big(a: Any) -> Any:
        return a > 10

    node = feature(is_big, name="big", dtype="bool")
    result = _pipeline(node).run({"t": {"a": [1.0, 11.0]}})
    assert result == {"big": {"type": "bool", "values": [False, True]}}


def test_rule_defaults_to_string_output() -> None:
    def band(a: Any) -> Any:
        return np.where(a > 1, "high", "low")

    result = _pipeline(rule(band)).run({"t": {"a": [0.0, 2.0]}})
    assert result == {"band": {"type": "string", "values": ["low", "high"]}}
