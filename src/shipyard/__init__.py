"""Shipyard: from a data scientist's pipeline to a locked, signed production bundle.

The names a data scientist types::

    import shipyard as sy
    table = sy.Table("applications", [sy.Column("income", "float64", min=0)])
    pipeline = sy.Pipeline("credit_risk", "1.0.0", inputs=[table], nodes=[...])
    pipeline.export("dist/", reference=training_frame, sign_key="keys/shipyard.key")
"""

__version__ = "0.1.0"

from . import errors  # noqa: E402
from .pipeline import Column, OnnxModel, Pipeline, Table, feature, model, rule  # noqa: E402
from .runtime import Artifact  # noqa: E402

__all__ = [
    "Artifact",
    "Column",
    "OnnxModel",
    "Pipeline",
    "Table",
    "__version__",
    "errors",
    "feature",
    "model",
    "rule",
]
