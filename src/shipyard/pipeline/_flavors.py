"""Save a model node in the safest format that keeps its exact behaviour.

Order of preference: the library's own text format (XGBoost JSON, LightGBM
text), an ONNX file as given, skops for scikit-learn, captured source for a plain
function; a pickle only when nothing else can hold the object, flagged in
metadata. Each save is loaded back with the runtime's own loader, so a format
that writes but cannot read the model again (skops holding a lambda) is never
shipped: skops falls back to pickle, anything else raises ModelError.

Saving one model twice gives the same bytes, so that two exports of a pipeline with the
same ``created_at`` are the same bytes too. The other formats do this by themselves; skops
stamps the time and memory addresses into its file, which ``_skops.canonical`` rewrites.
"""

from __future__ import annotations

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
from ._skops import canonical as canonical_skops


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
    the last output for probabilities, the first otherwise). When the ``onnx``
    package is installed, a classifier's labels (``classes_``) are read from the
    graph, so that its probabilities and labels get the same shape and type as a
    native classifier's (a multiclass model gives one probability per class).
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, output: str | None = None) -> None:
        self.data = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.output = output
        self.classes_ = _onnx_classes(self.data)


# ai.onnx.ml attributes that hold a classifier's labels, in the order of its probabilities.
_ONNX_LABELS = ("classlabels_ints", "classlabels_int64s", "classlabels_strings")


def _onnx_classes(data: bytes) -> list[Any] | None:
    """The class labels an ONNX classifier declares, or None (a regressor, or unknown)."""
    try:
        import onnx
    except ImportError:  # the labels stay unknown; onnxruntime alone still runs the model
        return None
    try:
        graph = onnx.load_model_from_string(data).graph
    except Exception as exc:
        raise ModelError(f"not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    classes: list[Any] | None = None
    for node in graph.node:  # the last classifier in the graph labels the outputs
        for attribute in node.attribute:
            if node.domain == "ai.onnx.ml" and attribute.name in _ONNX_LABELS:
                if attribute.ints:
                    classes = [int(c) for c in attribute.ints]
                elif attribute.strings:
                    classes = [c.decode("utf-8") for c in attribute.strings]
    return classes


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


def fitted_on_frame(model: Any) -> bool:
    """True when a scikit-learn model was fitted on named columns (a pandas DataFrame).

    Such a model is called with a DataFrame of those names: given a bare matrix it
    would warn, on every prediction, that X has no valid feature names.
    """
    return (
        _module_root(model) == "sklearn" and getattr(model, "feature_names_in_", None) is not None
    )


def _sklearn(model: Any, spec: dict[str, Any]) -> SavedModel:
    import skops.io

    # skops' own bytes change with the time and the process (see _skops): stored canonical,
    # two exports of one model are the same bytes, so a bundle rebuilt is the same bundle.
    data = canonical_skops(skops.io.dumps(model))
    # What skops flags in this file, recorded for people reading the bundle. The loader
    # never trusts this list (an attacker rewriting the bundle writes it too): it trusts
    # the allow-list in shipyard/runtime/_models.py.
    spec["trusted_types"] = sorted(skops.io.get_untrusted_types(data=data))
    # A type from outside the libraries the bundle pins (a user's function or class) is
    # code the bundle does not carry: the host must provide it, so say so loudly.
    foreign = [t for t in spec["trusted_types"] if t.split(".")[0] not in _PINNED_MODULES]
    if foreign:
        spec["foreign_types"] = foreign
        warnings.warn(
            f"model '{spec.get('name', '?')}' refers to code outside the bundle "
            f"({', '.join(foreign)}); the production host must provide it",
            stacklevel=4,
        )
    return SavedModel(spec, data, "model.skops", ["scikit-learn", "skops"])


# Top-level modules whose types a skops file may name without being flagged.
_PINNED_MODULES = frozenset({"sklearn", "numpy", "scipy", "builtins", "collections", "functools"})


def _load_back(name: str, saved: SavedModel) -> SavedModel:
    """Load ``saved`` with the runtime's own loader; raise ModelError when it cannot be read."""
    from ..runtime import load_model

    spec = dict(saved.spec, file=saved.filename)
    spec.setdefault("name", name)
    # The model was just serialised from the caller's own object: nothing to distrust.
    load_model(spec, {saved.filename: saved.data}, allow_unsafe=True)
    return saved


def save_model(name: str, model: Any, spec: dict[str, Any]) -> SavedModel:
    """Serialise ``model`` for node ``name``; ``spec`` (output, classes, …) is completed in place.

    The saved bytes are loaded back before they are returned. Warns when the model
    can only be stored as a pickle; raises ModelError when the model is of no kind
    Shipyard can hold or its file cannot be loaded again.
    """
    root = _module_root(model)
    if isinstance(model, OnnxModel):
        spec.update(flavor="onnx", onnx_output=model.output)
        return _load_back(name, SavedModel(spec, model.data, "model.onnx", ["onnxruntime"]))
    if root == "xgboost":
        if not hasattr(model, "save_model") or type(model).__name__ == "Booster":
            raise ModelError(
                f"model '{name}': use the scikit-learn wrapper (XGBClassifier/XGBRegressor)"
            )
        # The wrapper's own save keeps its sklearn attributes (classes, objective).
        with _temp_file(".json") as path:
            model.save_model(path)
            buffer = Path(path).read_bytes()
        spec.update(flavor="xgboost", estimator_class=type(model).__name__)
        saved = SavedModel(spec, buffer, "model.json", ["xgboost", "scikit-learn"])
        return _load_back(name, saved)
    if root == "lightgbm":
        booster = model if type(model).__name__ == "Booster" else model.booster_
        text = booster.model_to_string().encode("utf-8")
        spec.update(flavor="lightgbm")
        if spec.get("classes") is None and classes_of(model) is not None:
            # The booster alone knows no labels: a classifier's "value" is its label, as
            # predict() gives it, not the booster's raw probabilities.
            spec["classes"] = classes_of(model)
        return _load_back(name, SavedModel(spec, text, "model.txt", ["lightgbm"]))
    if isinstance(model, types.FunctionType):
        source, function = capture(model, f"model '{name}'")
        spec.update(flavor="python", function=function)
        return _load_back(name, SavedModel(spec, source.encode(), "model.py", []))
    if root == "sklearn" or hasattr(model, "get_params"):
        try:
            saved = _load_back(name, _sklearn(model, dict(spec, flavor="sklearn")))
        except Exception as exc:  # skops cannot hold every object; say why and fall back
            cause = exc.__cause__ if isinstance(exc, ModelError) and exc.__cause__ else exc
            reason = f"skops could not hold it ({type(cause).__name__}: {cause})"
        else:
            spec.update(saved.spec)
            saved.spec = spec
            return saved
    else:
        reason = f"no safe format holds a {type(model).__module__}.{type(model).__name__}"
    if not (hasattr(model, "predict") or hasattr(model, "predict_proba")):
        raise ModelError(
            f"model '{name}' is a {type(model).__name__}: expected a scikit-learn, XGBoost or "
            "LightGBM estimator, an OnnxModel, or a plain function"
        )
    try:
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ModelError(
            f"model '{name}' cannot be saved: {reason}, and pickle cannot hold it either "
            f"({type(exc).__name__}: {exc})"
        ) from None
    spec.update(flavor="pickle", pickle=True, pickle_reason=reason)
    packages = ["scikit-learn"] if root == "sklearn" else []
    saved = _load_back(name, SavedModel(spec, data, "model.pkl", packages))
    warnings.warn(
        f"model '{name}' is stored as a pickle: {reason}. Loading it runs code; it is loaded "
        "only after the manifest check passes.",
        stacklevel=3,
    )
    return saved


class _temp_file:
    def __init__(self, suffix: str) -> None:
        import tempfile

        handle, self.path = tempfile.mkstemp(suffix=suffix)
        os.close(handle)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        os.unlink(self.path)
