"""ONNX acceleration: chosen only with proven parity, never silently different."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import shipyard as sy
from shipyard.errors import ModelError, UsageError
from shipyard.runtime import Artifact


def _breast_cancer() -> tuple[pd.DataFrame, np.ndarray]:
    raw = load_breast_cancer()
    frame = pd.DataFrame(raw.data, columns=[re.sub(r"\W+", "_", n) for n in raw.feature_names])
    frame["band"] = np.where(frame["mean_radius"] > 15, "large", "small")
    return frame, raw.target


FRAME, TARGET = _breast_cancer()
NUMERIC = [c for c in FRAME.columns if c != "band"]
TABLE = sy.Table("t", [sy.Column(c, "string" if c == "band" else "float64") for c in FRAME.columns])
REFERENCE = {"t": {c: FRAME[c].tolist() for c in FRAME.columns}}


def _classifiers() -> dict[str, tuple[Any, list[str], Any]]:
    import lightgbm
    import xgboost

    x = FRAME[NUMERIC].to_numpy()
    ct = SkPipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("oh", OneHotEncoder(), ["band"]), ("sc", StandardScaler(), NUMERIC)]
                ),
            ),
            ("lr", LogisticRegression(max_iter=5000)),
        ]
    ).fit(FRAME, TARGET)
    return {
        "logistic_regression": (
            make_pipeline(StandardScaler(), LogisticRegression()).fit(x, TARGET),
            NUMERIC,
            x,
        ),
        "random_forest": (
            RandomForestClassifier(n_estimators=20, random_state=0).fit(x, TARGET),
            NUMERIC,
            x,
        ),
        "hist_gradient_boosting": (
            HistGradientBoostingClassifier(max_iter=30).fit(x, TARGET),
            NUMERIC,
            x,
        ),
        "xgboost": (xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, TARGET), NUMERIC, x),
        "lightgbm": (
            lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, TARGET),
            NUMERIC,
            x,
        ),
        "column_transformer": (ct, [*NUMERIC, "band"], FRAME),
    }


CLASSIFIERS = _classifiers()


def _export(tmp_path: Path, model: Any, features: list[str], **options: Any) -> Artifact:
    node_options = {k: options.pop(k) for k in ("tolerance", "output") if k in options}
    pipeline = sy.Pipeline(
        "m",
        "1.0.0",
        inputs=[TABLE],
        nodes=[sy.model("score", model, features=features, **node_options)],
    )
    return Artifact(pipeline.export(tmp_path, **options))


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_every_model_kind_is_stored_as_onnx_with_recorded_parity(tmp_path: Path, kind: str) -> None:
    model, features, matrix = CLASSIFIERS[kind]
    artifact = _export(tmp_path, model, features, reference=REFERENCE)
    node = artifact.metadata["nodes"][0]
    assert node["backend"] == "onnx" and artifact.metadata["backend"] == {"score": "onnx"}
    assert "objects/score/model.onnx" in artifact.files
    assert not any(
        p.startswith("objects/score/") and not p.endswith(".onnx") for p in artifact.files
    )
    parity = node["parity"]
    assert parity["rows"] == len(FRAME) and parity["tolerance"] == 1e-5
    assert 0 <= parity["max_abs_diff"] <= 1e-5 and parity["labels_identical"] is True
    # The bundle's answers are the model's own, within the recorded difference.
    result = np.array(artifact.run(REFERENCE)["score"]["values"])
    expected = model.predict_proba(matrix)[:, 1]
    assert np.abs(result - expected).max() <= parity["max_abs_diff"] + 1e-12
    assert ((result > 0.5) == (model.predict(matrix) == 1)).all()


def test_onnx_bundles_need_onnxruntime_and_not_the_training_library(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["column_transformer"]
    artifact = _export(tmp_path, model, features, reference=REFERENCE)
    packages = artifact.versions["python_dict"]["packages"]
    assert set(packages) == {"numpy", "onnxruntime"}
    requirements = artifact.files["requirements.txt"].decode()
    assert "onnxruntime==" in requirements and "scikit-learn" not in requirements


def test_native_backend_keeps_the_native_file_and_no_onnxruntime(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["logistic_regression"]
    artifact = _export(tmp_path, model, features, reference=REFERENCE, backend="native")
    node = artifact.metadata["nodes"][0]
    assert node["backend"] == "native" and node["flavor"] == "sklearn"
    assert "objects/score/model.skops" in artifact.files
    assert "onnxruntime" not in artifact.versions["python_dict"]["packages"]


def test_a_conversion_outside_tolerance_keeps_the_native_form_and_says_why(tmp_path: Path) -> None:
    # Trees compare in float32 in ONNX: differences of ~1e-7 are real, so tolerance 0 fails.
    model, features, matrix = CLASSIFIERS["random_forest"]
    with pytest.warns(UserWarning, match="keeps its native form") as caught:
        artifact = _export(tmp_path, model, features, reference=REFERENCE, tolerance=0.0)
    node = artifact.metadata["nodes"][0]
    assert node["backend"] == "native" and node["flavor"] == "sklearn"
    assert "exceeds tolerance 0" in node["onnx_rejected"]
    assert "exceeds tolerance" in str(caught[0].message)
    result = artifact.run(REFERENCE)["score"]["values"]
    assert result == model.predict_proba(matrix)[:, 1].tolist()  # exactly the native answers


def test_a_model_no_converter_knows_keeps_the_native_form(tmp_path: Path) -> None:
    x = FRAME[NUMERIC].to_numpy()
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=5000)).fit(
        x, TARGET
    )
    with pytest.warns(UserWarning, match="keeps its native form"):
        artifact = _export(tmp_path, model, NUMERIC, reference=REFERENCE)
    node = artifact.metadata["nodes"][0]
    assert node["backend"] == "native" and "conversion failed" in node["onnx_rejected"]
    result = artifact.run(REFERENCE)["score"]["values"]
    assert np.allclose(result, model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_backend_onnx_refuses_a_model_it_cannot_convert(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["random_forest"]
    with pytest.raises(ModelError, match="model 'score' cannot be stored as ONNX: .*tolerance"):
        _export(tmp_path, model, features, reference=REFERENCE, tolerance=0.0, backend="onnx")
    assert list(tmp_path.iterdir()) == []


def test_backend_onnx_needs_reference_data(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["logistic_regression"]
    with pytest.raises(UsageError, match="needs reference data"):
        _export(tmp_path, model, features, backend="onnx")


def test_without_reference_data_auto_stays_native_and_says_why(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["logistic_regression"]
    node = _export(tmp_path, model, features).metadata["nodes"][0]
    assert (
        node["backend"] == "native" and node["onnx_rejected"] == "no reference data to prove parity"
    )


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["logistic_regression"]
    with pytest.raises(UsageError, match="unknown backend 'gpu'"):
        _export(tmp_path, model, features, reference=REFERENCE, backend="gpu")


def test_a_regressor_converts_in_double_precision_exactly(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    table = sy.Table("d", {f"f{i}": "float64" for i in range(x.shape[1])})
    model = LinearRegression().fit(x, y)
    pipeline = sy.Pipeline(
        "r",
        "1.0.0",
        inputs=[table],
        nodes=[sy.model("y", model, features=list(table.columns[i].name for i in range(10)))],
    )
    reference = {"d": {f"f{i}": x[:, i].tolist() for i in range(x.shape[1])}}
    artifact = Artifact(pipeline.export(tmp_path, reference=reference))
    node = artifact.metadata["nodes"][0]
    assert node["backend"] == "onnx" and node["onnx_dtype"] == "float64"
    assert np.allclose(artifact.run(reference)["y"]["values"], model.predict(x), rtol=0, atol=1e-8)


def test_parity_uses_values_computed_by_upstream_features(tmp_path: Path) -> None:
    @sy.feature
    def radius_ratio(mean_radius: Any, worst_radius: Any) -> Any:
        return worst_radius / mean_radius

    x = np.column_stack([FRAME[NUMERIC].to_numpy(), FRAME["worst_radius"] / FRAME["mean_radius"]])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, TARGET)
    pipeline = sy.Pipeline(
        "f",
        "1.0.0",
        inputs=[TABLE],
        nodes=[radius_ratio, sy.model("score", model, features=[*NUMERIC, "radius_ratio"])],
    )
    artifact = Artifact(pipeline.export(tmp_path, reference=REFERENCE))
    assert artifact.metadata["nodes"][1]["backend"] == "onnx"
    assert np.allclose(
        artifact.run(REFERENCE)["score"]["values"], model.predict_proba(x)[:, 1], atol=1e-9
    )


def test_inspect_shows_backend_and_parity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from shipyard.cli import main

    model, features, _ = CLASSIFIERS["xgboost"]
    artifact = _export(tmp_path, model, features, reference=REFERENCE)
    with pytest.raises(SystemExit) as done:
        main(["artifact", "inspect", str(artifact.path), "--json"])
    assert done.value.code in (0, None)
    node = json.loads(capsys.readouterr().out)["nodes"][0]
    assert node["backend"] == "onnx" and node["parity"]["labels_identical"] is True
    assert node["converted_from"] == "xgboost"


def test_no_warnings_on_the_hot_path(tmp_path: Path) -> None:
    model, features, _ = CLASSIFIERS["lightgbm"]
    artifact = _export(tmp_path, model, features, reference=REFERENCE)
    one_row = {"t": {c: values[:1] for c, values in REFERENCE["t"].items()}}
    artifact.run(one_row)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(artifact.run(one_row)["score"]["values"]) == 1


def _diabetes_regression(**node: Any) -> tuple[sy.Pipeline, dict[str, Any]]:
    import xgboost

    raw = load_diabetes()  # targets from 25 to 346: float32 trees differ by ~1e-4 there
    columns = list(raw.feature_names)
    model = xgboost.XGBRegressor(n_estimators=50, max_depth=4).fit(raw.data, raw.target)
    table = sy.Table("patients", [sy.Column(c, "float64") for c in columns])
    pipeline = sy.Pipeline(
        "progression",
        "1.0.0",
        inputs=[table],
        nodes=[sy.model("y", model, features=columns, **node)],
    )
    return pipeline, {"patients": {c: raw.data[:, i].tolist() for i, c in enumerate(columns)}}


def test_a_relative_tolerance_lets_a_regressor_on_large_targets_use_onnx(tmp_path: Path) -> None:
    absolute, reference = _diabetes_regression()
    with pytest.warns(UserWarning, match="keeps its native form: .*exceeds tolerance 1e-05"):
        kept = Artifact(absolute.export(tmp_path / "abs", reference=reference))
    assert kept.metadata["backend"]["y"] == "native"

    relative, _ = _diabetes_regression(rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "keeps its native form" warning
        chosen = Artifact(relative.export(tmp_path / "rel", reference=reference))
    parity = chosen.metadata["nodes"][0]["parity"]
    assert chosen.metadata["backend"]["y"] == "onnx"
    assert (parity["tolerance"], parity["rtol"]) == (1e-5, 1e-5)
    assert parity["max_abs_diff"] > 1e-5  # beyond the absolute tolerance alone


@pytest.mark.parametrize("rtol", [-0.1, 1.0, True, "1e-5"])
def test_a_bad_relative_tolerance_is_named(rtol: Any) -> None:
    with pytest.raises(sy.errors.GraphError, match=r"model 'y': rtol must be a number in \[0, 1\)"):
        _diabetes_regression(rtol=rtol)


def test_a_conversion_failure_with_a_known_cause_carries_a_hint(tmp_path: Path) -> None:
    from sklearn.impute import SimpleImputer

    frame = FRAME.copy()
    frame.loc[frame.index[::7], "band"] = None
    text = make_pipeline(SimpleImputer(strategy="constant", fill_value="none"), OneHotEncoder())
    model = SkPipeline(
        [
            (
                "prep",
                ColumnTransformer([("band", text, ["band"]), ("num", "passthrough", NUMERIC)]),
            ),
            ("lr", LogisticRegression(max_iter=5000)),
        ]
    ).fit(frame, TARGET)
    table = sy.Table(
        "t",
        [
            sy.Column(c, "string", nullable=True) if c == "band" else sy.Column(c, "float64")
            for c in FRAME
        ],
    )
    pipeline = sy.Pipeline("m", "1.0.0", inputs=[table], nodes=[sy.model("score", model)])
    reference = {"t": {c: frame[c].tolist() for c in frame.columns}}
    with pytest.warns(UserWarning, match="keeps its native form"):
        artifact = Artifact(pipeline.export(tmp_path, reference=reference))
    reason = artifact.metadata["nodes"][0]["onnx_rejected"]
    assert "hint: a SimpleImputer on a text column converts only with a string" in reason
