"""A pipeline whose rule reads its threshold from app config, for the app config tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import shipyard as sy


@sy.rule(app_config=["threshold"])
def flag(x: Any, threshold: float = 0.5) -> Any:
    """'high' where x reaches the threshold (app config 'threshold', else 0.5), else 'low'."""
    return np.where(x >= threshold, "high", "low")


def threshold_pipeline(version: str = "1.0.0") -> sy.Pipeline:
    """'gate': table ``items`` (x, a number from 0), output ``flag``."""
    items = sy.Table("items", [sy.Column("x", "float64", min=0.0)])
    return sy.Pipeline("gate", version, inputs=[items], nodes=[flag], outputs=["flag"])


def threshold_bundle(folder: Path, sign_key: Path, version: str = "1.0.0") -> Path:
    """The 'gate' pipeline (``version``) exported, signed with ``sign_key``, into ``folder``."""
    reference = {"items": {"x": [0.1, 0.5, 0.7, 0.95]}}
    return threshold_pipeline(version).export(folder, reference=reference, sign_key=sign_key)
