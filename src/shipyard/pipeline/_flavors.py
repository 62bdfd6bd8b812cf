"""Save a model node in the safest format that keeps its exact behaviour.

Order of preference: the library's own text format (XGBoost JSON, LightGBM
text), an ONNX file as given, skops for scikit-learn, captured source for a plain
function; a pickle only when nothing else can hold the object, flagged in
metadata. Each save is loaded back and checked with the runtime's own loader.
"""

from __future__ import annotations

import io
import os
import pickle
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ._capture import capture


@dataclass
class SavedModel:
    """What a model node contributes to a bundle."""

    spec: dict[str, Any]
    data: bytes
    filename: str
    packages: list[str] = field(default_factory=list)


class OnnxModel:
    """An ONNX model file to use as a node, run with onnxruntime.

    ``output`` chooses which of the graph's outputs is the node's value (default:
    the last output for probabilities, the first otherwise).
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, output: str | None = None) -> None:
        self.data = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.output = output


def _module_root(model: Any) -> str:
    return type(model).__module__.split(".")[0]


def classes_of(model: Any) -> list[Any] | None:
    """The class labels of a classifier as JSON-safe values, or None."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    return np.asarray(classes).tolist()


def label_dtype(classes: list[Any] | None) -> str:
    """The column type of a classifier's predicted labels."""
    if not classes:
        return "float64"
    if all(isinstance(c, bool) for c in classes):
        return "bool"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "int64"
    if all(isinstance(c, (int, float)) for c in classes):
        return "float64"
    return "string"


def _sklearn(model: Any, spec: dict[str, Any]) -> SavedModel:
    import skops.io

    data = skops.io.dumps(model)
    spec["trusted_types"] = sorted(skops.io.get_untrusted_types(data=data))
    return SavedModel(spec, data, "model.skops", ["scikit-learn", "skops"])


def save_model(name: str, model: Any, spec: dict[str, Any]) -> SavedModel:
    """Serialise ``model`` for node ``name``; ``spec`` (output, classes, …) is completed in place.

    Raises ModelError when the model is of no kind Shipyard can hold.
    """
    root = _module_root(model)
    if isinstance(model, OnnxModel):
        spec.update(flavor="onnx", onnx_output=model.output)
        return SavedModel(spec, model.data, "model.onnx", ["onnxruntime"])
    if root == "xgboost":
        if not hasattr(model, "save_model") or type(model).__name__ == "Booster":
            raise ModelError(f"model '{name}': use the scikit-learn wrapper (XGBClassifier/XGBRegressor)")
        # The wrapper's own save keeps its sklearn attributes (classes, objective).
        with _temp_file(".json") as path:
            model.save_model(path)
            buffer = Path(path).read_bytes()
        spec.update(flavor="xgboost", estimator_class=type(model).__name__)
        return SavedModel(spec, buffer, "model.json", ["xgboost", "scikit-learn"])
    if root == "lightgbm":
        booster = model if type(model).__name__ == "Booster" else model.booster_
        text = booster.model_to_string().encode("utf-8")
        spec.update(flavor="lightgbm")
        return SavedModel(spec, text, "model.txt", ["lightgbm"])
    if isinstance(model, types.FunctionType):
        source, function = capture(model, f"model '{name}'")
        spec.update(flavor="python", function=function)
        return SavedModel(spec, source.encode(), "model.py", [])
    if root == "sklearn" or hasattr(model, "get_params"):
        try:
            saved = _sklearn(model, dict(spec, flavor="sklearn"))
            spec.update(saved.spec)
            saved.spec = spec
            return saved
        except Exception as exc:  # skops cannot hold every object; say why and fall back
            reason = f"skops could not save it ({type(exc).__name__}: {exc})"
    else:
        reason = f"no safe format holds a {type(model).__module__}.{type(model).__name__}"
    if not (hasattr(model, "predict") or hasattr(model, "predict_proba")):
        raise ModelError(
            f"model '{name}' is a {type(model).__name__}: expected a scikit-learn, XGBoost or LightGBM "
            "estimator, an OnnxModel, or a plain function"
        )
    warnings.warn(
        f"model '{name}' is stored as a pickle: {reason}. Loading it runs code; it is loaded only "
        "after the manifest check passes.",
        stacklevel=3,
    )
    buffer_io = io.BytesIO()
    pickle.dump(model, buffer_io, protocol=pickle.HIGHEST_PROTOCOL)
    spec.update(flavor="pickle", pickle=True, pickle_reason=reason)
    packages = ["scikit-learn"] if root == "sklearn" else []
    return SavedModel(spec, buffer_io.getvalue(), "model.pkl", packages)


class _temp_file:
    def __init__(self, suffix: str) -> None:
        import tempfile

        handle, self.path = tempfile.mkstemp(suffix=suffix)
        os.close(handle)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        os.unlink(self.path)
