"""Shipyard: from a data scientist's pipeline to a locked, signed production bundle.

The names a data scientist types::

    import shipyard as sy
    table = sy.Table("applications", [sy.Column("income", "float64", min=0)])
    pipeline = sy.Pipeline("credit_risk", "1.0.0", inputs=[table], nodes=[...])
    pipeline.export("dist/", reference=training_frame, sign_key="keys/shipyard.key")

The pipeline names are imported on first use (PEP 562): they need numpy, while
``shipyard.runtime`` (inspect, verify, extract a bundle) needs only the standard
library and must stay importable on a host that has nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from ._version import __version__
from .runtime import Artifact

if TYPE_CHECKING:
    from .pipeline import (
        Column,
        OnnxModel,
        Pipeline,
        Table,
        feature,
        knowledge,
        llm,
        model,
        parse_answer,
        prompt,
        retrieve,
        rule,
    )

_PIPELINE_NAMES = frozenset(
    {
        "Column",
        "OnnxModel",
        "Pipeline",
        "Table",
        "feature",
        "knowledge",
        "llm",
        "model",
        "parse_answer",
        "prompt",
        "retrieve",
        "rule",
    }
)

__all__ = [
    "Artifact",
    "Column",
    "OnnxModel",
    "Pipeline",
    "Table",
    "__version__",
    "errors",
    "feature",
    "knowledge",
    "llm",
    "model",
    "parse_answer",
    "prompt",
    "retrieve",
    "rule",
]


def __getattr__(name: str) -> Any:
    if name in _PIPELINE_NAMES:
        from . import pipeline

        value = getattr(pipeline, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'shipyard' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _PIPELINE_NAMES)
