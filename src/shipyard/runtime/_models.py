"""Load a model node from verified bytes and call it.

Copied into every bundle. Each flavor imports its own library only when a bundle
uses it, so a bundle needs numpy plus the libraries of the flavors it holds.
A loader returns ``predict(columns) -> array`` where ``columns`` are the node's
input arrays in declared order.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import ModelError

Predict = Callable[[Sequence[np.ndarray]], np.ndarray]


def feature_matrix(columns: Sequence[np.ndarray], spec: Mapping[str, Any]) -> Any:
    """What a native model's predict takes: a float64 matrix, or a DataFrame when it was fitted
    on one (``input_format`` ``pandas``, columns named by ``feature_names``)."""
    if spec.get("input_format") == "pandas":
        import pandas as pd

        return pd.DataFrame(
            {name: col for name, col in zip(spec["feature_names"], columns, strict=True)},
            copy=False,
        )
    return stack(columns, np.float64)


def stack(columns: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
    """Columns as one C-contiguous ``rows x features`` matrix of ``dtype``.

    One numpy call for 1-D columns (``np.column_stack`` costs one per column, which is
    most of a single-row request's time); a list[float64] column adds its width.
    """
    if all(c.ndim == 1 for c in columns):
        return np.ascontiguousarray(np.array(columns, dtype=dtype).T)
    if len(columns) == 1:
        return np.ascontiguousarray(columns[0], dtype=dtype)
    return np.column_stack(columns).astype(dtype, copy=False)


def _shape_output(raw: Any, spec: Mapping[str, Any], kind: str) -> np.ndarray:
    """Turn a probability matrix or prediction vector into the node's declared output."""
    out = np.asarray(raw)
    if kind == "probability":
        if out.ndim == 1:  # a booster that returns P(class 1) for binary problems
            out = np.column_stack([1.0 - out, out])
        if spec.get("binary", out.shape[1] == 2):
            return out[:, int(spec.get("positive_index", 1))].astype(np.float64)
        return out.astype(np.float64)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    return out


def _estimator_predict(model: Any, spec: Mapping[str, Any]) -> Predict:
    kind = spec["output"]

    def predict(columns: Sequence[np.ndarray]) -> np.ndarray:
        x = feature_matrix(columns, spec)
        if kind == "probability":
            return _shape_output(model.predict_proba(x), spec, kind)
        return _shape_output(model.predict(x), spec, kind)

    return predict


def _load_sklearn(data: bytes, spec: Mapping[str, Any]) -> Predict:
    import skops.io

    model = skops.io.loads(data, trusted=list(spec.get("trusted_types", [])))
    return _estimator_predict(model, spec)


def _load_xgboost(data: bytes, spec: Mapping[str, Any]) -> Predict:
    import xgboost

    model = getattr(xgboost, spec.get("estimator_class", "XGBClassifier"))()
    model.load_model(bytearray(data))
    return _estimator_predict(model, spec)


def _load_lightgbm(data: bytes, spec: Mapping[str, Any]) -> Predict:
    import lightgbm

    booster = lightgbm.Booster(model_str=data.decode("utf-8"))
    kind = spec["output"]
    classes = spec.get("classes")

    def predict(columns: Sequence[np.ndarray]) -> np.ndarray:
        raw = np.asarray(booster.predict(feature_matrix(columns, spec)))
        if kind == "probability":
            return _shape_output(raw, spec, kind)
        if classes is not None:  # a classifier's label or value is what its predict() gives
            index = (raw > 0.5).astype(np.int64) if raw.ndim == 1 else raw.argmax(axis=1)
            return np.asarray(classes)[index]
        return raw

    return predict


def load_onnx(data: bytes, spec: Mapping[str, Any]) -> Predict:
    """The predict function of an ONNX graph in ``data``; the export's parity check calls it too.

    Raises ModelError when the graph's inputs or outputs are not what ``spec`` says.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread per call: a server runs one executor per worker process, and for the
    # small batches of online scoring thread hand-offs cost more than they save.
    options.intra_op_num_threads = int(spec.get("onnx_threads", 1))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: shape notes on label outputs are noise here
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    per_column = spec.get("onnx_inputs")
    if per_column is None and len(inputs) != 1:
        raise ModelError(
            f"model '{spec['name']}': the ONNX graph takes {len(inputs)} inputs "
            f"({', '.join(i.name for i in inputs)}); Shipyard feeds it one matrix"
        )
    wanted = spec.get("onnx_output")
    names = [o.name for o in session.get_outputs()]
    if wanted is not None and wanted not in names:
        raise ModelError(
            f"model '{spec['name']}': the ONNX graph has no output '{wanted}' "
            f"(outputs: {', '.join(names)})"
        )
    output_name = wanted or names[-1 if spec["output"] == "probability" else 0]
    kind = spec["output"]
    run = session.run

    if per_column is not None:
        kinds = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
        feeds = [(name, kinds.get(kind_name)) for name, kind_name in per_column]

        def build(columns: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
            feed = {}
            for (name, dtype), column in zip(feeds, columns, strict=True):
                if dtype is None:  # a string column: ONNX strings may not be None
                    values = np.array(["" if v is None else str(v) for v in column.tolist()])
                    feed[name] = values.astype(object).reshape(-1, 1)
                else:
                    feed[name] = np.asarray(column, dtype=dtype).reshape(-1, 1)
            return feed
    else:
        model_input = inputs[0].name
        dtype = np.float64 if "double" in inputs[0].type else np.float32

        def build(columns: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
            return {model_input: stack(columns, dtype)}

    def predict(columns: Sequence[np.ndarray]) -> np.ndarray:
        (raw,) = run([output_name], build(columns))
        if isinstance(raw, list) and raw and isinstance(raw[0], dict):  # a ZipMap output
            keys = sorted(raw[0])
            raw = np.array([[row[k] for k in keys] for row in raw])
        return _shape_output(raw, spec, kind)

    return predict


def _load_python(data: bytes, spec: Mapping[str, Any]) -> Predict:
    from ._source import load_function

    function = load_function(data, spec["file"], spec["function"])
    return lambda columns: np.asarray(function(feature_matrix(columns, spec)))


def _load_pickle(data: bytes, spec: Mapping[str, Any]) -> Predict:
    import pickle

    # Only reached after MANIFEST.json matched this exact byte string.
    model = pickle.load(io.BytesIO(data))  # noqa: S301
    return _estimator_predict(model, spec)


LOADERS: dict[str, Callable[[bytes, Mapping[str, Any]], Predict]] = {
    "sklearn": _load_sklearn,
    "xgboost": _load_xgboost,
    "lightgbm": _load_lightgbm,
    "onnx": load_onnx,
    "python": _load_python,
    "pickle": _load_pickle,
}


def load_model(spec: Mapping[str, Any], files: Mapping[str, bytes]) -> Predict:
    """The predict function of one model node; raises ModelError naming the node."""
    flavor = spec.get("flavor")
    loader = LOADERS.get(str(flavor))
    if loader is None:
        raise ModelError(f"model '{spec['name']}': unknown flavor '{flavor}'")
    try:
        return loader(files[spec["file"]], spec)
    except ImportError as exc:
        raise ModelError(
            f"model '{spec['name']}' needs the '{exc.name}' package ({flavor} flavor); "
            "install the bundle's requirements.txt"
        ) from exc
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"model '{spec['name']}' could not be loaded: {exc}") from exc
