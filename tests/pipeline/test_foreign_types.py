"""A scikit-learn model that refers to code outside the bundle is flagged, not hidden."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import shipyard as sy


def log_transform(x: np.ndarray) -> np.ndarray:
    """A user's helper: skops stores a reference to it, not its code."""
    return np.log1p(x)


def _pipeline(model: object) -> sy.Pipeline:
    table = sy.Table("t", {f"c{i}": "float64" for i in range(3)})
    return sy.Pipeline(
        "p", "1.0.0", inputs=[table], nodes=[sy.model("m", model, features=["c0", "c1", "c2"])]
    )


def test_a_reference_to_a_user_function_is_recorded_and_warned(tmp_path: Path) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(FunctionTransformer(log_transform), LogisticRegression(max_iter=3000))
    model.fit(x[:, :3], y)
    with pytest.warns(UserWarning, match="refers to code outside the bundle"):
        path = _pipeline(model).export(tmp_path, backend="native")
    node = sy.Artifact(path).metadata["nodes"][0]
    assert node["foreign_types"] == [f"{__name__}.log_transform"]


def test_library_only_models_are_not_flagged(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x[:, :3], y)
    node = sy.Artifact(_pipeline(model).export(tmp_path, backend="native")).metadata["nodes"][0]
    assert "foreign_types" not in node
    assert not [w for w in recwarn if "outside the bundle" in str(w.message)]
