"""Every model flavor survives export: the bundle predicts what the raw model predicts.

Each case trains a small model on a data set bundled with scikit-learn, exports a
pipeline holding it, loads the bundle with ``shipyard.Artifact`` and compares its
predictions with the raw model's on the same rows. The bundle must also say how each
model is stored and list exactly the libraries needed to run it.
"""

from __future__ import annotations

import copy
import io
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

import shipyard
from shipyard import Column, OnnxModel, Pipeline, Table, model
from shipyard.pipeline._flavors import save_model
from tests.pipeline._pickle_model import WeightedSum

SPARK_ONLY = {"pyspark", "pyarrow"}


@dataclass(frozen=True)
class Data:
    """A bundled data set as one input table of float64 columns."""

    table: str
    names: list[str]
    x: np.ndarray
    y: np.ndarray

    def spec(self) -> Table:
        return Table(self.table, [Column(name, "float64") for name in self.names])

    def columns(self) -> dict[str, dict[str, list[float]]]:
        return {self.table: {name: self.x[:, i].tolist() for i, name in enumerate(self.names)}}


def _data(loader: Callable[..., Any], table: str) -> Data:
    raw = loader()
    names = [re.sub(r"\W+", "_", str(n).strip()) for n in raw.feature_names]
    return Data(table, names, np.asarray(raw.data, dtype=np.float64), np.asarray(raw.target))


def _standardised(data: Data) -> Data:
    """The same data with each column scaled to mean 0, sd 1, so linear models converge quickly."""
    return Data(data.table, data.names, (data.x - data.x.mean(axis=0)) / data.x.std(axis=0), data.y)


def breast_cancer() -> Data:
    return _standardised(_data(load_breast_cancer, "tumours"))


def row_total(x: Any) -> Any:
    """A plain-function model: the sum of each row's features."""
    return x.sum(axis=1)


@dataclass
class Case:
    """A pipeline to export, the input to score and what the raw model predicts on it."""

    pipeline: Pipeline
    data: Any
    expected: dict[str, np.ndarray]
    flavor: str
    filename: str
    packages: set[str]
    reference: Any = None
    labels: tuple[str, ...] = ()  # outputs compared exactly
    model_nodes: tuple[str, ...] = ()


def _classifier(estimator: Any, data: Data, flavor: str, filename: str, packages: set[str]) -> Case:
    estimator.fit(data.x, data.y)
    pipeline = Pipeline(
        "flavor_case",
        "1.0.0",
        inputs=[data.spec()],
        nodes=[
            model("proba", estimator, features=data.names),
            model("label", estimator, features=data.names, output="label"),
        ],
        outputs=["proba", "label"],
    )
    proba = estimator.predict_proba(data.x)
    return Case(
        pipeline,
        data.columns(),
        {
            "proba": proba[:, 1] if proba.shape[1] == 2 else proba,
            "label": estimator.predict(data.x),
        },
        flavor,
        filename,
        packages,
        reference=data.columns(),
        labels=("label",),
        model_nodes=("proba", "label"),
    )


def _regressor(estimator: Any, data: Data, flavor: str, filename: str, packages: set[str]) -> Case:
    estimator.fit(data.x, data.y)
    pipeline = Pipeline(
        "flavor_case",
        "1.0.0",
        inputs=[data.spec()],
        nodes=[model("value", estimator, features=data.names)],
    )
    return Case(
        pipeline,
        data.columns(),
        {"value": estimator.predict(data.x)},
        flavor,
        filename,
        packages,
        reference=data.columns(),
        model_nodes=("value",),
    )


SKLEARN = {"numpy", "scikit-learn", "skops"}


def logistic_regression(directory: Path) -> Case:
    from sklearn.linear_model import LogisticRegression

    return _classifier(
        LogisticRegression(max_iter=1000), breast_cancer(), "sklearn", "model.skops", SKLEARN
    )


def random_forest(directory: Path) -> Case:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    return _classifier(forest, breast_cancer(), "sklearn", "model.skops", SKLEARN)


def hist_gradient_boosting(directory: Path) -> Case:
    from sklearn.ensemble import HistGradientBoostingClassifier

    boosting = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    return _classifier(boosting, breast_cancer(), "sklearn", "model.skops", SKLEARN)


def column_transformer(directory: Path) -> Case:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = _data(load_breast_cancer, "tumours")
    numeric = data.names[:6]
    frame = pd.DataFrame(data.x[:, :6], columns=numeric)
    radius = frame["mean_radius"].to_numpy()
    frame["size_band"] = np.where(radius < 12, "small", np.where(radius < 16, "medium", "large"))
    estimator = make_pipeline(
        ColumnTransformer(
            [
                ("band", OneHotEncoder(handle_unknown="ignore"), ["size_band"]),
                ("measures", StandardScaler(), numeric),
            ]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(frame, data.y)
    table = Table(
        "tumours",
        [
            *(Column(name, "float64") for name in numeric),
            Column("size_band", "string", categories=["small", "medium", "large"]),
        ],
    )
    pipeline = Pipeline(
        "flavor_case",
        "1.0.0",
        inputs=[table],
        nodes=[model("proba", estimator), model("label", estimator, output="label")],
        outputs=["proba", "label"],
    )
    return Case(
        pipeline,
        {"tumours": {name: frame[name].tolist() for name in frame.columns}},
        {"proba": estimator.predict_proba(frame)[:, 1], "label": estimator.predict(frame)},
        "sklearn",
        "model.skops",
        SKLEARN | {"pandas"},
        reference=frame,
        labels=("label",),
        model_nodes=("proba", "label"),
    )


def sklearn_regressor(directory: Path) -> Case:
    from sklearn.ensemble import GradientBoostingRegressor

    boosting = GradientBoostingRegressor(n_estimators=25, max_depth=2, random_state=0)
    return _regressor(boosting, _data(load_diabetes, "patients"), "sklearn", "model.skops", SKLEARN)


XGBOOST = {"numpy", "scikit-learn", "xgboost"}


def xgboost_classifier(directory: Path) -> Case:
    from xgboost import XGBClassifier

    booster = XGBClassifier(n_estimators=10, max_depth=3, random_state=0)
    return _classifier(booster, breast_cancer(), "xgboost", "model.json", XGBOOST)


def xgboost_regressor(directory: Path) -> Case:
    from xgboost import XGBRegressor

    booster = XGBRegressor(n_estimators=10, max_depth=3, random_state=0)
    return _regressor(booster, _data(load_diabetes, "patients"), "xgboost", "model.json", XGBOOST)


LIGHTGBM = {"numpy", "lightgbm"}


def lightgbm_binary(directory: Path) -> Case:
    from lightgbm import LGBMClassifier

    booster = LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, verbose=-1)
    return _classifier(booster, breast_cancer(), "lightgbm", "model.txt", LIGHTGBM)


def lightgbm_multiclass(directory: Path) -> Case:
    from lightgbm import LGBMClassifier

    booster = LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, verbose=-1)
    return _classifier(booster, _data(load_wine, "wines"), "lightgbm", "model.txt", LIGHTGBM)


def lightgbm_regressor(directory: Path) -> Case:
    from lightgbm import LGBMRegressor

    booster = LGBMRegressor(n_estimators=10, num_leaves=7, random_state=0, verbose=-1)
    return _regressor(booster, _data(load_diabetes, "patients"), "lightgbm", "model.txt", LIGHTGBM)


def onnx_logistic_regression(directory: Path) -> Case:
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    data = breast_cancer()
    estimator = LogisticRegression(max_iter=1000).fit(data.x, data.y)
    path = directory / "logistic.onnx"
    onnx_model = to_onnx(estimator, data.x[:1].astype(np.float32), options={"zipmap": False})
    path.write_bytes(onnx_model.SerializeToString())
    pipeline = Pipeline(
        "flavor_case",
        "1.0.0",
        inputs=[data.spec()],
        nodes=[
            model("proba", OnnxModel(path), features=data.names, output="probability"),
            model("label", OnnxModel(path), features=data.names, output="label"),
        ],
        outputs=["proba", "label"],
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    matrix = {session.get_inputs()[0].name: data.x.astype(np.float32)}
    labels, probabilities = session.run(None, matrix)
    return Case(
        pipeline,
        data.columns(),
        {"proba": probabilities[:, 1], "label": labels},
        "onnx",
        "model.onnx",
        {"numpy", "onnxruntime"},
        reference=data.columns(),
        labels=("label",),
        model_nodes=("proba", "label"),
    )


def python_function(directory: Path) -> Case:
    data = _data(load_diabetes, "patients")
    pipeline = Pipeline(
        "flavor_case",
        "1.0.0",
        inputs=[data.spec()],
        nodes=[model("total", row_total, features=data.names)],
    )
    return Case(
        pipeline,
        data.columns(),
        {"total": row_total(data.x)},
        "python",
        "model.py",
        {"numpy"},
        reference=data.columns(),
        model_nodes=("total",),
    )


def pickled_object(directory: Path) -> Case:
    data = _data(load_diabetes, "patients")
    weighted = WeightedSum(np.linspace(-1.0, 1.0, len(data.names)), bias=150.0)
    pipeline = Pipeline(
        "flavor_case",
        "1.0.0",
        inputs=[data.spec()],
        nodes=[model("weighted", weighted, features=data.names)],
    )
    return Case(
        pipeline,
        data.columns(),
        {"weighted": weighted.predict(data.x)},
        "pickle",
        "model.pkl",
        {"numpy"},
        reference=data.columns(),
        model_nodes=("weighted",),
    )


CASES: dict[str, Callable[[Path], Case]] = {
    builder.__name__: builder
    for builder in (
        logistic_regression,
        random_forest,
        hist_gradient_boosting,
        column_transformer,
        sklearn_regressor,
        xgboost_classifier,
        xgboost_regressor,
        lightgbm_binary,
        lightgbm_multiclass,
        lightgbm_regressor,
        onnx_logistic_regression,
        python_function,
        pickled_object,
    )
}


@dataclass
class Exported:
    """A case after export: the bundle opened, and the warnings the export gave."""

    case: Case
    artifact: shipyard.Artifact
    warnings: list[str]


def export(case: Case, directory: Path) -> Exported:
    """Export the case's pipeline into ``directory``, recording every warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = case.pipeline.export(directory, reference=case.reference, backend="native")
    return Exported(case, shipyard.Artifact(path), [str(w.message) for w in caught])


@pytest.fixture(scope="module", params=list(CASES))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    directory = tmp_path_factory.mktemp(request.param)
    return export(CASES[request.param](directory), directory)


def test_bundle_predicts_what_the_raw_model_predicts(exported: Exported) -> None:
    case = exported.case
    result = exported.artifact.run(case.data)
    assert sorted(result) == sorted(case.expected)
    for name, expected in case.expected.items():
        got = np.asarray(result[name]["values"])
        assert got.shape == np.shape(expected), name
        if name in case.labels:
            assert np.array_equal(got, expected), name
        else:
            assert np.allclose(got, expected, rtol=0, atol=1e-9), name


CLASSIFIERS = [
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
    "column_transformer",
    "xgboost_classifier",
    "lightgbm_binary",
    "lightgbm_multiclass",
    "onnx_logistic_regression",
]


@pytest.mark.parametrize("exported", CLASSIFIERS, indirect=True)
def test_labels_keep_the_type_of_the_classes(exported: Exported) -> None:
    # Every classifier here was fitted on integer classes.
    result = exported.artifact.run(exported.case.data, outputs=["label"])
    assert result["label"]["type"] == "int64"


@pytest.mark.parametrize("exported", ["lightgbm_multiclass"], indirect=True)
def test_multiclass_probabilities_are_one_list_per_row(exported: Exported) -> None:
    result = exported.artifact.run(exported.case.data, outputs=["proba"])
    assert result["proba"]["type"] == "list[float64]"
    assert np.allclose(np.sum(result["proba"]["values"], axis=1), 1.0, rtol=0, atol=1e-9)


def test_metadata_records_flavor_and_model_file(exported: Exported) -> None:
    case = exported.case
    meta = exported.artifact.metadata
    assert meta["flavors"] == dict.fromkeys(case.model_nodes, case.flavor)
    nodes = {node["name"]: node for node in meta["nodes"]}
    for name in case.model_nodes:
        assert nodes[name]["flavor"] == case.flavor
        assert nodes[name]["file"] == f"objects/{name}/{case.filename}"
        stored = [path for path in exported.artifact.files if path.startswith(f"objects/{name}/")]
        assert stored == [f"objects/{name}/{case.filename}"]


@pytest.mark.parametrize("exported", [n for n in CASES if n != "pickled_object"], indirect=True)
def test_safe_formats_are_not_flagged_as_pickle(exported: Exported) -> None:
    assert exported.artifact.metadata["unsafe_pickle"] == []
    assert not [message for message in exported.warnings if "pickle" in message]


def test_a_pickled_model_is_flagged_and_the_export_warns(tmp_path: Path) -> None:
    case = pickled_object(tmp_path)
    with pytest.warns(UserWarning, match=r"model 'weighted' is stored as a pickle"):
        path = case.pipeline.export(tmp_path, reference=case.reference, backend="native")
    artifact = shipyard.Artifact(path)
    assert artifact.metadata["unsafe_pickle"] == ["weighted"]
    (node,) = artifact.metadata["nodes"]
    assert node["pickle"] is True
    assert "WeightedSum" in node["pickle_reason"]


def test_versions_list_exactly_the_libraries_used(exported: Exported) -> None:
    case = exported.case
    versions = exported.artifact.versions
    assert set(versions["python_dict"]["packages"]) == case.packages
    assert set(versions["pyspark_dataframe"]["packages"]) == case.packages | SPARK_ONLY
    for package, version in versions["pyspark_dataframe"]["packages"].items():
        assert version == metadata.version(package), package


def test_requirements_pin_the_libraries_python_dict_needs(exported: Exported) -> None:
    case = exported.case
    lines = exported.artifact.files["requirements.txt"].decode().splitlines()
    pinned = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert set(pinned) == case.packages
    assert all(pinned[package] == metadata.version(package) for package in pinned)
    commented = {line.lstrip("# ").split("==")[0] for line in lines if "==" in line and "#" in line}
    assert commented == SPARK_ONLY


def test_onnx_multiclass_probabilities_are_one_list_per_row(tmp_path: Path) -> None:
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    data = _standardised(_data(load_wine, "wines"))
    estimator = LogisticRegression(max_iter=1000).fit(data.x, data.y)
    onnx_bytes = to_onnx(
        estimator, data.x[:1].astype(np.float32), options={"zipmap": False}
    ).SerializeToString()
    pipeline = Pipeline(
        "onnx_wines",
        "1.0.0",
        inputs=[data.spec()],
        nodes=[model("proba", OnnxModel(onnx_bytes), features=data.names, output="probability")],
    )
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    _, expected = session.run(None, {session.get_inputs()[0].name: data.x.astype(np.float32)})
    result = shipyard.Artifact(pipeline.export(tmp_path)).run(data.columns())
    assert result["proba"]["type"] == "list[float64]"
    assert np.allclose(result["proba"]["values"], expected, rtol=0, atol=1e-9)


def test_an_onnx_output_that_does_not_exist_fails_the_export(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    data = breast_cancer()
    estimator = LogisticRegression(max_iter=1000).fit(data.x, data.y)
    onnx_bytes = to_onnx(estimator, data.x[:1].astype(np.float32)).SerializeToString()
    node = model("p", OnnxModel(onnx_bytes, output="probabilty"), features=data.names)
    pipeline = Pipeline("onnx_typo", "1.0.0", inputs=[data.spec()], nodes=[node])
    with pytest.raises(
        shipyard.errors.ModelError, match=r"no output 'probabilty'.*output_probability"
    ):
        pipeline.export(tmp_path)


def test_a_model_fitted_on_a_dataframe_runs_without_feature_name_warnings(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    data = breast_cancer()
    frame = pd.DataFrame(data.x, columns=data.names)
    estimator = LogisticRegression(max_iter=1000).fit(frame, data.y)
    pipeline = Pipeline("named", "1.0.0", inputs=[data.spec()], nodes=[model("p", estimator)])
    artifact = shipyard.Artifact(pipeline.export(tmp_path, reference=frame, backend="native"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = artifact.run(data.columns())
    expected = estimator.predict_proba(frame)[:, 1]
    assert np.allclose(result["p"]["values"], expected, rtol=0, atol=1e-9)
    assert "pandas" in artifact.versions["python_dict"]["packages"]


def test_a_lightgbm_classifier_value_is_its_predicted_label(tmp_path: Path) -> None:
    from lightgbm import LGBMClassifier

    data = _data(load_wine, "wines")
    booster = LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, verbose=-1)
    booster.fit(data.x, data.y)
    node = model("variety", booster, features=data.names, output="value")
    pipeline = Pipeline("wines", "1.0.0", inputs=[data.spec()], nodes=[node])
    result = shipyard.Artifact(pipeline.export(tmp_path)).run(data.columns())
    assert result["variety"]["values"] == booster.predict(data.x).astype(float).tolist()


def test_lightgbm_string_labels_come_back_as_strings(tmp_path: Path) -> None:
    from lightgbm import LGBMClassifier

    data = _data(load_wine, "wines")
    labels = np.array(["barolo", "grignolino", "barbera"])[data.y]
    booster = LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, verbose=-1)
    booster.fit(data.x, labels)
    node = model("variety", booster, features=data.names, output="label")
    pipeline = Pipeline("wines", "1.0.0", inputs=[data.spec()], nodes=[node])
    result = shipyard.Artifact(pipeline.export(tmp_path)).run(data.columns())
    assert result["variety"]["type"] == "string"
    assert result["variety"]["values"] == booster.predict(data.x).tolist()


def test_a_model_no_format_can_load_again_fails_the_export(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    data = breast_cancer()
    lambda_step = FunctionTransformer(lambda x: x * 2.0)
    estimator = make_pipeline(lambda_step, LogisticRegression(max_iter=1000))
    estimator.fit(data.x, data.y)
    node = model("p", estimator, features=data.names)
    pipeline = Pipeline("lambda_step", "1.0.0", inputs=[data.spec()], nodes=[node])
    with pytest.raises(shipyard.errors.ModelError, match=r"model 'p' cannot be saved.*skops"):
        pipeline.export(tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- reproducible skops files (shipyard/pipeline/_skops.py) ---

SKLEARN_CASES = [
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
    "column_transformer",
    "sklearn_regressor",
]


def _skops(estimator: Any) -> bytes:
    """The bytes of ``estimator``'s model.skops, as an export stores them."""
    saved = save_model("m", estimator, {"name": "m", "output": "value"})
    assert saved.filename == "model.skops"
    return saved.data


def _fitted(name: str, directory: Path) -> Any:
    case = CASES[name](directory)
    return case.pipeline.nodes[case.model_nodes[0]].model


@pytest.mark.parametrize("name", SKLEARN_CASES)
def test_a_scikit_learn_model_fitted_twice_alike_is_stored_as_the_same_bytes(
    name: str, tmp_path: Path
) -> None:
    # Each fit builds new objects at other memory addresses, which skops writes as ids.
    first, second = _fitted(name, tmp_path), _fitted(name, tmp_path)
    assert _skops(first) == _skops(second)


def test_a_skops_file_records_no_time_of_saving(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(_skops(_fitted("random_forest", tmp_path)))) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_set_a_model_holds_is_stored_the_same_in_any_iteration_order() -> None:
    from sklearn.preprocessing import StandardScaler

    # 8 and 16 share a slot in a small set: the first one added is listed first.
    added_first, added_last = {8}, {16}
    added_first.add(16)
    added_last.add(8)
    assert list(added_first) != list(added_last)  # else this test would prove nothing
    stored = []
    for labels in (added_first, added_last):
        scaler = StandardScaler().fit(np.eye(3))
        scaler.labels_seen_ = labels  # anything an estimator keeps, skops stores
        stored.append(_skops(scaler))
    assert stored[0] == stored[1]
    assert skops.io.loads(stored[0], trusted=[]).labels_seen_ == {8, 16}


def test_objects_a_model_shares_come_back_shared(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline as SklearnPipeline
    from sklearn.preprocessing import StandardScaler

    data = breast_cancer()
    scaler = StandardScaler().fit(data.x)
    twin = copy.copy(scaler)  # another object holding the very same arrays
    scaled = twin.transform(scaler.transform(scaler.transform(data.x)))
    classifier = LogisticRegression(max_iter=1000).fit(scaled, data.y)
    steps = [("scale", scaler), ("rescale", scaler), ("twin", twin), ("classify", classifier)]
    estimator = SklearnPipeline(steps)
    loaded = skops.io.loads(_skops(estimator), trusted=[])
    (_, first), (_, again), (_, copied), _ = loaded.steps
    assert again is first
    assert copied is not first and copied.mean_ is first.mean_
    assert np.array_equal(loaded.predict_proba(data.x), estimator.predict_proba(data.x))
    node = model("p", estimator, features=data.names)
    pipeline = Pipeline("shared_steps", "1.0.0", inputs=[data.spec()], nodes=[node])
    artifact = shipyard.Artifact(pipeline.export(tmp_path, backend="native"))
    result = artifact.run(data.columns())
    assert np.array_equal(result["p"]["values"], estimator.predict_proba(data.x)[:, 1])
