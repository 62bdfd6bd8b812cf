"""The suite's own tumour-triage pipeline (a feature, a model, a rule) and generated rows of it.

The suite does not import the demo: ``shipyard demo`` may change its story without
changing what a test checks. This pipeline is trained on scikit-learn's breast cancer
data, like the demo's, so the suite keeps a real model, ONNX conversion included:
``tumour_triage`` 1.0.0 over table ``tumours`` (the 30 measurements, none negative),
giving ``p_malignant`` and ``decision`` (refer above 0.5, review above 0.2, else routine).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from shipyard import Column, Pipeline, Table, feature, model, rule

SEED = 7
TABLE = "tumours"


def _training_data() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Column names (snake case), measurements, and 1 where the tumour is malignant."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [re.sub(r"\W+", "_", name.strip()) for name in data.feature_names]
    return names, data.data, (data.target == 0).astype(np.int64)  # target 0 means malignant


def reference() -> dict[str, dict[str, list[float]]]:
    """The training data as a dict dataset: ``{"tumours": {column: [values]}}``."""
    names, x, _ = _training_data()
    return {TABLE: {name: x[:, i].tolist() for i, name in enumerate(names)}}


@feature
def compactness_ratio(mean_area: Any, mean_perimeter: Any) -> Any:
    """Area per unit of perimeter."""
    return mean_area / np.maximum(mean_perimeter, 1e-9)


@rule(params={"refer_above": 0.5, "review_above": 0.2})
def decision(p_malignant: Any, refer_above: float, review_above: float) -> Any:
    """refer, review or routine, by the probability of malignancy."""
    review = np.where(p_malignant > review_above, "review", "routine")
    return np.where(p_malignant > refer_above, "refer", review)


def build_pipeline() -> Pipeline:
    """Train the classifier (scaled logistic regression) and return the pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names, x, y = _training_data()
    ratio = x[:, names.index("mean_area")] / x[:, names.index("mean_perimeter")]
    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED)
    ).fit(np.column_stack([x, ratio]), y)
    return Pipeline(
        "tumour_triage",
        "1.0.0",
        inputs=[Table(TABLE, [Column(name, "float64", min=0.0) for name in names])],
        nodes=[
            compactness_ratio,
            model("p_malignant", classifier, features=[*names, "compactness_ratio"]),
            decision,
        ],
        outputs=["p_malignant", "decision"],
        target="malignant",
        description="Probability that a breast tumour is malignant, and the follow-up it calls for",
        groups=["oncology"],
        permissible_purpose=["clinical decision support (tests)"],
        tags={"dataset": "sklearn.load_breast_cancer"},
    )


def tumour_rows(rows: int, seed: int = 0, noise: float = 0.02) -> Any:
    """A pyarrow Table of ``rows`` rows: ``id`` (T0000000, T0000001, …) and the 30
    measurements, resampled from the training data with multiplicative noise, never negative."""
    import pyarrow as pa

    data = reference()[TABLE]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(next(iter(data.values()))), rows)
    columns: dict[str, Any] = {"id": pa.array([f"T{i:07d}" for i in range(rows)])}
    for name, values in data.items():
        sample = np.asarray(values)[picks] * (1.0 + rng.normal(0.0, noise, rows))
        columns[name] = np.round(np.maximum(sample, 0.0), 6)
    return pa.table(columns)
