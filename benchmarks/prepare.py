"""Train the benchmark models and export their bundles (runs in Shipyard's environment).

Writes into WORK: ``models.pkl`` (the raw fitted models and the input rows) and, per
model, ``bundles/<model>-native/`` and ``bundles/<model>-onnx/`` (extracted bundles).
"""

from __future__ import annotations

import pickle
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import shipyard as sy
from shipyard.runtime import Artifact


def data() -> tuple[pd.DataFrame, np.ndarray]:
    """Breast-cancer features with snake_case names plus one string column, and the target."""
    raw = load_breast_cancer()
    names = [re.sub(r"\W+", "_", n.strip()) for n in raw.feature_names]
    frame = pd.DataFrame(raw.data, columns=names)
    frame["size_band"] = np.where(
        frame["mean_radius"] > 15, "large", np.where(frame["mean_radius"] > 12, "medium", "small")
    )
    return frame, (raw.target == 0).astype(int)


def models(frame: pd.DataFrame, target: np.ndarray) -> dict[str, tuple[Any, list[str]]]:
    """Each benchmark model with the columns it reads."""
    import lightgbm
    import xgboost

    numeric = [c for c in frame.columns if c != "size_band"]
    x = frame[numeric].to_numpy()
    column_transformer = SkPipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), ["size_band"]),
                        ("scale", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=5000)),
        ]
    ).fit(frame, target)
    return {
        "logistic_regression": (LogisticRegression(max_iter=5000).fit(x, target), numeric),
        "random_forest": (
            RandomForestClassifier(n_estimators=100, random_state=0).fit(x, target),
            numeric,
        ),
        "hist_gradient_boosting": (
            HistGradientBoostingClassifier(random_state=0).fit(x, target),
            numeric,
        ),
        "xgboost": (xgboost.XGBClassifier(n_estimators=100, max_depth=4).fit(x, target), numeric),
        "lightgbm": (lightgbm.LGBMClassifier(n_estimators=100, verbose=-1).fit(x, target), numeric),
        "column_transformer": (column_transformer, [*numeric, "size_band"]),
    }


def main(work: Path) -> None:
    frame, target = data()
    table = sy.Table(
        "tumours",
        [sy.Column(c, "string" if c == "size_band" else "float64") for c in frame.columns],
    )
    reference = {"tumours": {c: frame[c].tolist() for c in frame.columns}}
    fitted = models(frame, target)
    bundles = work / "bundles"
    shutil.rmtree(bundles, ignore_errors=True)
    report = {}
    for name, (model, columns) in fitted.items():
        for backend in ("native", "onnx"):
            pipeline = sy.Pipeline(
                f"bench_{name}",
                "1.0.0",
                inputs=[table],
                nodes=[sy.model("score", model, features=columns)],
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = pipeline.export(
                    work / "dist" / backend, reference=reference, backend=backend
                )
            artifact = Artifact(path)
            node = next(n for n in artifact.metadata["nodes"] if n["name"] == "score")
            report[(name, backend)] = node.get("flavor")
            artifact.extract(None, bundles / f"{name}-{backend}")
    with (work / "models.pkl").open("wb") as handle:
        pickle.dump({"models": fitted, "frame": frame, "report": report}, handle)
    for (name, backend), flavor in sorted(report.items()):
        print(f"  {name:24s} {backend:6s} -> stored as {flavor}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
