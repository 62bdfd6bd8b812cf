"""Load a model node from verified bytes and call it.

Copied into every bundle. Each flavor imports its own library only when a bundle
uses it, so a bundle needs numpy plus the libraries of the flavors it holds.
A loader returns ``predict(columns) -> array`` where ``columns`` are the node's
input arrays in declared order.

What a loader trusts is the runtime's decision, never the bundle's: a pickle, or a
skops type beyond the allow-list below, loads only with the caller's ``allow_unsafe``
(the registry's ``allow_pickle`` allowance), whatever ``metadata.json`` says.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import ModelError

Predict = Callable[[Sequence[np.ndarray]], np.ndarray]

# The allowance a registry grants for code-running formats, named in every refusal.
ALLOWANCE = "allow_pickle"


@dataclass(frozen=True)
class Trust:
    """What the caller vouches for: ``signed`` (MANIFEST.sig was checked against a key)
    and ``allow_unsafe`` (load pickles and skops types beyond the allow-list)."""

    signed: bool
    allow_unsafe: bool


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


# Types beyond skops' own safe defaults that the scikit-learn estimators Shipyard supports
# hold, measured with scikit-learn 1.9 and skops 0.16 (``skops.io.get_untrusted_types`` of
# each fitted estimator). Loading trusts these and nothing else: a bundle's ``trusted_types``
# is the bundle's own word, which an attacker who rewrites the bundle also writes.
SKOPS_ALLOWED = frozenset(
    {
        # The node storage of DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*,
        # IsolationForest, AdaBoost and Bagging. skops warns that its node indices are not
        # bounds-checked either; it stays allowed for unsigned bundles because every tree
        # model needs it (moving it to SKOPS_SIGNED_ONLY is the stricter choice).
        "sklearn.tree._tree.Tree",
        # A dtype rebuilt from its name (SimpleImputer, KBinsDiscretizer, ColumnTransformer
        # pipelines): no code and no arrays.
        "numpy.dtype",
        # The dict subclass holding VotingClassifier's and StackingClassifier's estimators.
        "sklearn.utils._bunch.Bunch",
        # MLPClassifier/MLPRegressor's optimiser state: plain objects of arrays that only
        # fit reads; predict never touches them.
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        # CalibratedClassifierCV's per-fold calibrators: plain objects whose numbers numpy uses.
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        # The scoring function SelectKBest/SelectPercentile keep: a reference to a library
        # function, called by fit only.
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.r_regression",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        # HistGradientBoosting with categorical features keeps
        # FunctionTransformer(partial(check_array, ...)). A partial is safe to rebuild because
        # skops checks the function it wraps as a type of its own (it must be on this list),
        # and check_array only validates its input.
        "functools.partial",
        "sklearn.utils.validation.check_array",
    }
)

# Types a crafted file can turn into out-of-bounds memory reads (a crash, or worse) when
# the model predicts: their index arrays are used without bounds checks. Trusted only when
# the caller vouches for the bundle (its signature was checked against a key).
SKOPS_SIGNED_ONLY = frozenset(
    {
        # HistGradientBoosting*: its ``nodes`` hold raw child and feature indices (skops flags
        # it for this reason).
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # KNeighbors*, RadiusNeighbors*, LocalOutlierFactor: a KDTree whose ``idx_array`` was
        # set out of range crashed ``query`` here (segmentation fault).
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        # Their distance metrics come only with those trees; weighted Minkowski carries an
        # array whose length the tree trusts.
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    }
)


def _schema_types(data: bytes) -> set[str]:
    """Every type a skops file names (``module.class`` of each node), read from schema.json.

    skops flags a type only when its own defaults do not trust it, and those defaults
    differ between skops versions; the signed-only rule must hold on every one.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError):
        return set()  # not a skops file: skops.io.loads says so itself
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                found.add(f"{module}.{name}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def skops_types(data: bytes, signed: bool) -> tuple[list[str], list[str]]:
    """``(types skops may load, types that need the allowance)`` for one skops file.

    The first list is the file's flagged types that Shipyard's allow-list holds (with the
    signed-only ones when ``signed``); the second, every other flagged type.
    """
    import skops.io

    flagged = set(skops.io.get_untrusted_types(data=data))
    flagged |= _schema_types(data) & SKOPS_SIGNED_ONLY
    allowed = (SKOPS_ALLOWED | SKOPS_SIGNED_ONLY) if signed else SKOPS_ALLOWED
    return sorted(flagged & allowed), sorted(flagged - allowed)


def _load_sklearn(data: bytes, spec: Mapping[str, Any], trust: Trust) -> Predict:
    import skops.io

    trusted, beyond = skops_types(data, trust.signed)
    if beyond and not trust.allow_unsafe:
        raise ModelError(_refusal(spec["name"], beyond))
    model = skops.io.loads(data, trusted=trusted + beyond)
    return _estimator_predict(model, spec)


def _refusal(name: str, beyond: Sequence[str]) -> str:
    """Why model ``name`` is not loaded: the types beyond the allow-list, and what would do."""
    unsigned = [t for t in beyond if t in SKOPS_SIGNED_ONLY]
    other = [t for t in beyond if t not in SKOPS_SIGNED_ONLY]
    reasons = []
    if other:
        reasons.append(
            f"types outside Shipyard's allow-list ({', '.join(other)}), which can run code"
        )
    if unsigned:
        reasons.append(
            f"{', '.join(unsigned)}, whose indices are not bounds-checked: trusted only in a "
            "bundle whose signature was checked against a trusted key"
        )
    return (
        f"model '{name}' is refused: its skops file holds {'; and '.join(reasons)}. "
        f"Loading it needs the {ALLOWANCE} allowance (allow_unsafe=True)"
        + ("" if other else ", or the bundle signed and checked with its key")
    )


def _load_xgboost(data: bytes, spec: Mapping[str, Any], trust: Trust) -> Predict:
    import xgboost

    model = getattr(xgboost, spec.get("estimator_class", "XGBClassifier"))()
    model.load_model(bytearray(data))
    return _estimator_predict(model, spec)


def _load_lightgbm(data: bytes, spec: Mapping[str, Any], trust: Trust) -> Predict:
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


def _load_python(data: bytes, spec: Mapping[str, Any], trust: Trust) -> Predict:
    from ._source import load_function

    function = load_function(data, spec["file"], spec["function"])
    return lambda columns: np.asarray(function(feature_matrix(columns, spec)))


def _load_pickle(data: bytes, spec: Mapping[str, Any], trust: Trust) -> Predict:
    import pickle

    if not trust.allow_unsafe:  # a signature says who made the pickle, not what it runs
        reason = spec.get("pickle_reason")
        raise ModelError(
            f"model '{spec['name']}' is refused: it is stored as a pickle"
            + (f" ({reason})" if reason else "")
            + f", and loading a pickle runs code. It needs the {ALLOWANCE} allowance "
            "(allow_unsafe=True)"
        )
    # Only reached after MANIFEST.json matched this exact byte string.
    model = pickle.load(io.BytesIO(data))  # noqa: S301
    return _estimator_predict(model, spec)


LOADERS: dict[str, Callable[[bytes, Mapping[str, Any], Trust], Predict]] = {
    "sklearn": _load_sklearn,
    "xgboost": _load_xgboost,
    "lightgbm": _load_lightgbm,
    "onnx": lambda data, spec, trust: load_onnx(data, spec),
    "python": _load_python,
    "pickle": _load_pickle,
}


def load_model(
    spec: Mapping[str, Any],
    files: Mapping[str, bytes],
    *,
    signed: bool = False,
    allow_unsafe: bool = True,
) -> Predict:
    """The predict function of one model node; raises ModelError naming the node.

    ``signed``: the caller checked the bundle's signature against a key, so the skops
    types Shipyard trusts only in signed bundles (HistGradientBoosting's TreePredictor,
    KNN's trees) load. ``allow_unsafe``: pickles and skops types beyond Shipyard's
    allow-list load too, and may run code from the bundle; without it they raise
    ModelError naming the node, the types and the ``allow_pickle`` allowance before any
    object of the file is built. The default, True, loads what the bundle holds, as a
    host that chose this bundle would; a service loading what others registered (serve,
    batch) passes False.
    """
    flavor = spec.get("flavor")
    loader = LOADERS.get(str(flavor))
    if loader is None:
        raise ModelError(f"model '{spec['name']}': unknown flavor '{flavor}'")
    try:
        return loader(files[spec["file"]], spec, Trust(signed, allow_unsafe))
    except ImportError as exc:
        raise ModelError(
            f"model '{spec['name']}' needs the '{exc.name}' package ({flavor} flavor); "
            "install the bundle's requirements.txt"
        ) from exc
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"model '{spec['name']}' could not be loaded: {exc}") from exc
