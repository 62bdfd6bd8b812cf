"""A model only pickle can hold: a plain class, importable so that pickle can find it again."""

from __future__ import annotations

import numpy as np


class WeightedSum:
    """Predicts ``X @ weights + bias``; not an estimator any safe format knows."""

    def __init__(self, weights: np.ndarray, bias: float) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weights + self.bias
