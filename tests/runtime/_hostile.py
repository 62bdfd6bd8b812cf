"""Model objects that leave a mark on disk as they are rebuilt: what a hostile model file does.

Importable, so that skops and pickle can find them again, as they would find any type
a production host has installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.pipeline._pickle_model import WeightedSum


class MarksWhenRebuilt:
    """A "model" whose ``__setstate__`` writes ``marker``: skops calls it while loading."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("rebuilt")
        self.__dict__.update(state)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(len(x))


def leave_mark(marker: str, weights: list[float]) -> WeightedSum:
    """Write ``marker``, then return a working model: what unpickling a hostile model runs."""
    Path(marker).write_text("unpickled")
    return WeightedSum(np.asarray(weights), 0.0)


class MarksWhenUnpickled:
    """Pickles as a call to ``leave_mark``: code that runs inside ``pickle.load``."""

    def __init__(self, marker: str, weights: list[float]) -> None:
        self.marker = marker
        self.weights = weights

    def __reduce__(self) -> tuple[Any, tuple[str, list[float]]]:
        return leave_mark, (self.marker, self.weights)
