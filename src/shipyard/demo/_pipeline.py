"""The demo pipeline: triage of breast-tumour measurements (scikit-learn's breast cancer data).

``build_pipeline()`` trains a small model and returns the pipeline; ``reference()``
returns its training data. ``shipyard artifact build shipyard.demo:build_pipeline``
exports it; ``shipyard demo`` runs the whole journey. Needs scikit-learn (the ``sklearn``
extra), imported only when a function is called.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..pipeline import Column, Pipeline, Table, feature, model, rule

_SEED = 7


def _columns() -> tuple[list[str], np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [re.sub(r"\W+", "_", n.strip()) for n in data.feature_names]
    # In this data set target 0 is malignant; the pipeline scores P(malignant).
    return names, data.data, (data.target == 0).astype(np.int64)


def reference() -> dict[str, dict[str, list[float]]]:
    """The training data as a dict dataset ``{"tumours": {column: [values]}}``."""
    names, x, _ = _columns()
    return {"tumours": {name: x[:, i].tolist() for i, name in enumerate(names)}}


@feature
def compactness_ratio(mean_area: Any, mean_perimeter: Any) -> Any:
    """Area per unit of perimeter: larger for rounder, more compact cells."""
    return mean_area / np.maximum(mean_perimeter, 1e-9)


@rule(params={"refer_above": 0.5, "review_above": 0.2})
def decision(p_malignant: Any, refer_above: float, review_above: float) -> Any:
    """Refer, review or routine follow-up, by the model's probability of malignancy."""
    return np.where(
        p_malignant > refer_above,
        "refer",
        np.where(p_malignant > review_above, "review", "routine"),
    )


def build_pipeline() -> Pipeline:
    """Train the demo classifier and return the pipeline (a feature, a model and a rule)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names, x, y = _columns()
    ratio = x[:, names.index("mean_area")] / x[:, names.index("mean_perimeter")]
    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, random_state=_SEED)
    )
    classifier.fit(np.column_stack([x, ratio]), y)
    tumours = Table("tumours", [Column(n, "float64", min=0.0) for n in names])
    return Pipeline(
        "tumour_triage",
        "1.0.0",
        inputs=[tumours],
        nodes=[
            compactness_ratio,
            model("p_malignant", classifier, features=[*names, "compactness_ratio"]),
            decision,
        ],
        outputs=["p_malignant", "decision"],
        target="malignant",
        description="Probability that a breast tumour is malignant, and the follow-up it calls for",
        groups=["oncology"],
        permissible_purpose=["clinical decision support (demo)"],
        tags={"dataset": "sklearn.load_breast_cancer"},
    )
