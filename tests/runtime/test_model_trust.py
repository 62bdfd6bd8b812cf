"""Loading a model trusts Shipyard's own allow-list, never the bundle's word.

A bundle's ``trusted_types`` is written by whoever wrote the bundle. The loader trusts only
the skops types listed in ``shipyard/runtime/_models.py`` (some only for a bundle whose
signature was checked) and refuses pickles, unless the caller passes ``allow_unsafe``:
the ``allow_pickle`` allowance serve and batch take from the registry.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer

import shipyard as sy
from shipyard.artifact import sign_files, write_bundle
from shipyard.errors import ModelError
from shipyard.runtime import Artifact, load_model
from shipyard.runtime._loading import load
from tests.pipeline._pickle_model import WeightedSum

from ._hostile import MarksWhenRebuilt, MarksWhenUnpickled

FEATURES = ["c0", "c1", "c2"]
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
SKOPS_FILE = "objects/m/model.skops"

Files = dict[str, bytes]


@pytest.fixture(autouse=True)
def no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a signature is checked depends on each test's key only."""
    monkeypatch.delenv("SHIPYARD_PUBLIC_KEY", raising=False)


def training_data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x[:, :3], y


def rows() -> dict[str, dict[str, list[float]]]:
    x, _ = training_data()
    return {"t": {name: x[:20, i].tolist() for i, name in enumerate(FEATURES)}}


def export(model: Any, directory: Path, sign_key: Path | None = None) -> Path:
    """A one-model pipeline over columns c0..c2 as a native bundle (export warnings muted)."""
    pipeline = sy.Pipeline(
        "m",
        "1.0.0",
        inputs=[sy.Table("t", dict.fromkeys(FEATURES, "float64"))],
        nodes=[sy.model("m", model, features=FEATURES)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline.export(directory, backend="native", sign_key=sign_key)


def repack(
    bundle: Path, target: Path, change: Callable[[Files], Files], sign_key: Path | None = None
) -> Path:
    """``bundle`` with its files passed through ``change``, re-hashed into a new manifest.

    Unsigned unless ``sign_key`` is given: what anyone holding the bundle can make of it.
    """
    artifact = Artifact(bundle)
    files = {k: v for k, v in artifact.files.items() if k not in ("MANIFEST.json", "MANIFEST.sig")}
    files = sign_files(change(files), sign_key)
    target.mkdir(parents=True, exist_ok=True)
    return write_bundle(artifact.package, files, target / bundle.name, 0)


def with_model(
    data: bytes, path: str, extra_trusted: Sequence[str] = ()
) -> Callable[[Files], Files]:
    """A change that swaps the model file for ``data`` and has the metadata trust more."""

    def change(files: Files) -> Files:
        metadata = json.loads(files["metadata.json"])
        for node in metadata["nodes"]:
            if node.get("file") == path:
                node["trusted_types"] = sorted({*node.get("trusted_types", []), *extra_trusted})
        return {**files, path: data, "metadata.json": json.dumps(metadata).encode()}

    return change


@pytest.fixture(scope="module")
def logistic_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain scikit-learn bundle (unsigned) whose model file the tests replace."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x, y = training_data()
    model = make_pipeline(FunctionTransformer(), StandardScaler(), LogisticRegression())
    return export(model.fit(x, y), tmp_path_factory.mktemp("logistic"))


def function_transformer_calling(function: Callable[..., Any]) -> bytes:
    """A skops file of a fitted pipeline whose first step calls ``function`` on the input."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = training_data()
    model = make_pipeline(FunctionTransformer(), LogisticRegression(max_iter=2000)).fit(x, y)
    model[0].func = function
    return bytes(skops.io.dumps(model))


@pytest.mark.parametrize(
    ("function", "type_name"), [(eval, "builtins.eval"), (os.system, "posix.system")]
)
def test_a_dangerous_type_the_metadata_trusts_is_refused_naming_it(
    logistic_bundle: Path, tmp_path: Path, function: Callable[..., Any], type_name: str
) -> None:
    assert type_name == f"{function.__module__}.{function.__name__}"
    hostile = repack(
        logistic_bundle,
        tmp_path,
        with_model(function_transformer_calling(function), SKOPS_FILE, [type_name]),
    )
    artifact = Artifact(hostile)
    assert type_name in artifact.metadata["nodes"][0]["trusted_types"]  # the bundle's word
    assert artifact.verify()["files"] > 0  # the manifest checks: it was re-hashed
    with pytest.raises(ModelError, match=re.escape(type_name)) as refused:
        artifact.executor(allow_unsafe=False)
    assert "model 'm'" in str(refused.value)
    assert "allow_pickle" in str(refused.value)


def test_a_skops_file_whose_loading_runs_code_is_refused_before_it_runs(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "rebuilt"
    hostile_type = f"{MarksWhenRebuilt.__module__}.MarksWhenRebuilt"
    data = bytes(skops.io.dumps(MarksWhenRebuilt(str(marker))))
    hostile = repack(logistic_bundle, tmp_path / "b", with_model(data, SKOPS_FILE, [hostile_type]))
    with pytest.raises(ModelError, match=re.escape(hostile_type)):
        Artifact(hostile).executor(allow_unsafe=False)
    assert not marker.exists()
    # The allowance is what lets such a file run: the test above would see it.
    Artifact(hostile).executor(allow_unsafe=True)
    assert marker.read_text() == "rebuilt"


def test_a_signature_does_not_widen_the_allow_list(
    logistic_bundle: Path, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    data = function_transformer_calling(eval)
    signed = repack(
        logistic_bundle, tmp_path, with_model(data, SKOPS_FILE, ["builtins.eval"]), key_pair[0]
    )
    artifact = Artifact(signed, key_pair[1])
    assert artifact.verify()["signature_checked"] is True
    with pytest.raises(ModelError, match=r"builtins\.eval"):
        artifact.executor(allow_unsafe=False)


def test_a_plain_scikit_learn_bundle_loads_without_any_allowance(logistic_bundle: Path) -> None:
    result = Artifact(logistic_bundle).executor(allow_unsafe=False).run_dict(rows())
    assert len(result["m"]["values"]) == 20


# -- HistGradientBoosting: trusted only in a bundle whose signature was checked -----------


@pytest.fixture(scope="module")
def hist_gradient_boosting() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = training_data()
    return HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y)


@pytest.fixture(scope="module")
def signed_boosting_bundle(
    hist_gradient_boosting: Any,
    tmp_path_factory: pytest.TempPathFactory,
    key_pair: tuple[Path, Path],
) -> Path:
    return export(hist_gradient_boosting, tmp_path_factory.mktemp("hgb"), key_pair[0])


def test_hist_gradient_boosting_loads_when_its_signature_was_checked(
    signed_boosting_bundle: Path, hist_gradient_boosting: Any, key_pair: tuple[Path, Path]
) -> None:
    executor = Artifact(signed_boosting_bundle, key_pair[1]).executor(allow_unsafe=False)
    x, _ = training_data()
    expected = hist_gradient_boosting.predict_proba(x[:20])[:, 1]
    assert np.allclose(executor.run_dict(rows())["m"]["values"], expected, rtol=0, atol=1e-12)


def test_hist_gradient_boosting_signed_but_unchecked_is_refused(
    signed_boosting_bundle: Path,
) -> None:
    artifact = Artifact(signed_boosting_bundle)  # no key: the signature is not checked
    report = artifact.verify()
    assert (report["signed"], report["signature_checked"]) == (True, False)
    with pytest.raises(ModelError, match=re.escape(TREE_PREDICTOR)) as refused:
        artifact.executor(allow_unsafe=False)
    assert "signature was checked" in str(refused.value)
    assert "allow_pickle" in str(refused.value)


def test_hist_gradient_boosting_unsigned_needs_the_allowance(
    signed_boosting_bundle: Path, hist_gradient_boosting: Any, tmp_path: Path
) -> None:
    unsigned = repack(signed_boosting_bundle, tmp_path, lambda files: files)
    assert "MANIFEST.sig" not in Artifact(unsigned).files
    with pytest.raises(ModelError, match=re.escape(TREE_PREDICTOR)):
        Artifact(unsigned).executor(allow_unsafe=False)
    x, _ = training_data()
    scored = Artifact(unsigned).executor(allow_unsafe=True).run_dict(rows())
    assert np.allclose(scored["m"]["values"], hist_gradient_boosting.predict_proba(x[:20])[:, 1])


def test_the_loader_of_the_entry_points_passes_a_checked_signature_on(
    signed_boosting_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    files = Artifact(signed_boosting_bundle).files
    assert load(files, key_pair[1], allow_unsafe=False).signed is True
    with pytest.raises(ModelError, match=re.escape(TREE_PREDICTOR)):
        load(files, allow_unsafe=False)


# -- pickles: refused without the allowance, signed or not --------------------------------


@pytest.fixture(scope="module")
def pickle_bundle(tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]) -> Path:
    x, _ = training_data()
    model = WeightedSum(np.array([0.5, -1.0, 2.0]), 0.25)
    bundle = export(model, tmp_path_factory.mktemp("pickle"), key_pair[0])
    assert Artifact(bundle).metadata["flavors"] == {"m": "pickle"}
    return bundle


def test_a_pickle_is_refused_without_the_allowance_even_when_signed(
    pickle_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    with pytest.raises(ModelError, match=r"model 'm' is refused: it is stored as a pickle") as e:
        Artifact(pickle_bundle, key_pair[1]).executor(allow_unsafe=False)
    assert "allow_pickle" in str(e.value)


@pytest.mark.parametrize("allowance", [{"allow_unsafe": True}, {}], ids=["allowed", "default"])
def test_a_pickle_loads_with_the_allowance_which_is_artifacts_default(
    pickle_bundle: Path, allowance: dict[str, bool]
) -> None:
    x, _ = training_data()
    scored = Artifact(pickle_bundle).executor(**allowance).run_dict(rows())
    assert np.allclose(scored["m"]["values"], x[:20] @ np.array([0.5, -1.0, 2.0]) + 0.25)


def test_a_hostile_pickle_is_refused_before_it_runs(pickle_bundle: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    data = pickle.dumps(MarksWhenUnpickled(str(marker), [0.5, -1.0, 2.0]))
    hostile = repack(pickle_bundle, tmp_path / "b", with_model(data, "objects/m/model.pkl"))
    with pytest.raises(ModelError, match="allow_pickle"):
        Artifact(hostile).executor(allow_unsafe=False)
    assert not marker.exists()
    Artifact(hostile).executor(allow_unsafe=True)
    assert marker.read_text() == "unpickled"


def test_an_executor_loaded_with_the_allowance_is_not_reused_without_it(
    pickle_bundle: Path,
) -> None:
    artifact = Artifact(pickle_bundle)
    assert artifact.executor(allow_unsafe=True).allow_unsafe is True
    with pytest.raises(ModelError, match="stored as a pickle"):
        artifact.executor(allow_unsafe=False)


# -- the allow-list covers the estimators Shipyard supports --------------------------------


def _estimators() -> dict[str, Any]:
    from sklearn import (
        calibration,
        compose,
        ensemble,
        feature_selection,
        impute,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )

    forest = ensemble.RandomForestClassifier
    return {
        "random_forest": forest(5, max_depth=3, random_state=np.random.RandomState(0)),
        "decision_tree": tree.DecisionTreeClassifier(max_depth=3),
        "gradient_boosting": ensemble.GradientBoostingClassifier(n_estimators=5),
        "isolation_forest": ensemble.IsolationForest(n_estimators=5, random_state=0),
        "voting": ensemble.VotingClassifier(
            [("nb", naive_bayes.GaussianNB()), ("tree", tree.DecisionTreeClassifier())],
            voting="soft",
        ),
        "svc": svm.SVC(),
        "gaussian_nb": naive_bayes.GaussianNB(),
        "mlp": neural_network.MLPClassifier((8,), max_iter=50, random_state=0),
        "calibrated": calibration.CalibratedClassifierCV(svm.LinearSVC(), cv=3),
        "select_k_best": pipeline.make_pipeline(
            feature_selection.SelectKBest(k=2), linear_model.LogisticRegression()
        ),
        "imputed_column_transformer": pipeline.make_pipeline(
            compose.ColumnTransformer(
                [
                    ("bands", preprocessing.OneHotEncoder(handle_unknown="ignore"), [0]),
                    ("order", preprocessing.OrdinalEncoder(), [1]),
                ],
                remainder=impute.SimpleImputer(),
            ),
            ensemble.RandomForestClassifier(3, random_state=0),
        ),
        "brute_force_knn": neighbors.KNeighborsClassifier(algorithm="brute"),
    }


SIGNED_ONLY = {
    "hist_gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingClassifier", {}),
    "kd_tree_knn": ("sklearn.neighbors", "KNeighborsClassifier", {"algorithm": "kd_tree"}),
    "ball_tree_knn": ("sklearn.neighbors", "KNeighborsClassifier", {"algorithm": "ball_tree"}),
}


def _skops_spec() -> dict[str, Any]:
    return {"name": "m", "flavor": "sklearn", "file": "m.skops", "output": "label"}


def _fitted_file(estimator: Any) -> dict[str, bytes]:
    x, y = training_data()
    if "column_transformer" in str(estimator):
        x = np.round(x / 10)  # whole numbers: categories for the encoders
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small MLP does not converge: not what is tested
        estimator.fit(x, y)
    return {"m.skops": bytes(skops.io.dumps(estimator))}


@pytest.mark.parametrize("name", list(_estimators()))
def test_supported_estimators_load_unsigned_without_the_allowance(name: str) -> None:
    files = _fitted_file(_estimators()[name])
    predict = load_model(_skops_spec(), files, signed=False, allow_unsafe=False)
    x, _ = training_data()
    assert len(predict([x[:5, i] for i in range(3)])) == 5


@pytest.mark.parametrize("name", list(SIGNED_ONLY))
def test_estimators_with_unchecked_indices_load_only_when_signed(name: str) -> None:
    import importlib

    module, cls, params = SIGNED_ONLY[name]
    files = _fitted_file(getattr(importlib.import_module(module), cls)(**params))
    with pytest.raises(ModelError, match="signature was checked"):
        load_model(_skops_spec(), files, signed=False, allow_unsafe=False)
    predict = load_model(_skops_spec(), files, signed=True, allow_unsafe=False)
    x, _ = training_data()
    assert len(predict([x[:5, i] for i in range(3)])) == 5
