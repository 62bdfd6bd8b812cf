"""Convert model nodes to ONNX and prove parity on reference data before choosing it.

Single-row latency in Python is dominated by a library's per-call overhead, and
onnxruntime's is far smaller than scikit-learn's, so a bundle predicts faster in
ONNX form. It is chosen only when, on the reference data, class labels are identical
and probabilities or values are within the node's tolerance; otherwise the native
form stays, with the reason in metadata.json.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._nodes import needs_frame

DEFAULT_TOLERANCE = 1e-5
PARITY_ROWS = 100_000  # parity is proven on at most this many reference rows
BACKENDS = ("auto", "native", "onnx")


@dataclass
class Candidate:
    """One ONNX conversion to try: its bytes and how the runtime must feed it.

    ``error`` is set (and ``data`` empty) when this conversion failed.
    """

    data: bytes
    spec: dict[str, Any]
    label_output: str | None
    error: str = ""


@contextlib.contextmanager
def _skl2onnx_bool_fix() -> Iterator[None]:
    """Work around skl2onnx 1.20 passing numpy bools where ONNX wants ints (HistGradientBoosting).

    skl2onnx's tree converter hands ``missing_go_to_left`` (a numpy bool) to ONNX's
    ``make_node``, which rejects it; we coerce that one attribute to int while converting.
    """
    try:
        from skl2onnx.common import tree_ensemble
    except ImportError:
        yield
        return
    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(
                kwargs["nodes_missing_value_tracks_true"]
            )
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _is_tree_model(model: Any) -> bool:
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    module = type(final).__module__
    return any(part in module for part in ("tree", "ensemble", "xgboost", "lightgbm"))


def _frame_inputs(
    columns: Sequence[np.ndarray], names: Sequence[str], float_type: str
) -> list[tuple[str, str]]:
    kinds = []
    for name, column in zip(names, columns, strict=True):
        if column.dtype.kind in "OUS":
            kinds.append((name, "string"))
        elif column.dtype.kind in "iu" and float_type == "int64":
            kinds.append((name, "int64"))
        else:
            kinds.append((name, float_type))
    return kinds


def candidates(
    model: Any, spec: dict[str, Any], columns: Sequence[np.ndarray]
) -> Iterator[Candidate]:
    """ONNX conversions of ``model`` to try, best first (double precision, then single).

    Trees compare in single precision in every library, so tree models try float32 only.
    A conversion that fails yields a Candidate carrying the error instead.
    """
    root = type(model).__module__.split(".")[0]
    trees = _is_tree_model(model) or root in ("xgboost", "lightgbm")
    for float_type in ["float32"] if trees else ["float64", "float32"]:
        try:
            yield _convert(model, spec, columns, float_type, root)
        except Exception as exc:  # a converter that cannot handle this model or precision
            message = f"{type(exc).__name__}: {str(exc)[:300]}{conversion_hint(str(exc))}"
            yield Candidate(b"", {"onnx_dtype": float_type}, None, error=message)


# Converter messages that say too little, each with what to do instead (checked against
# skl2onnx 1.x: its SimpleImputer converter takes text only with string missing values).
_HINTS = (
    (
        "missing values are string",
        "a SimpleImputer on a text column converts only with a string missing_values, and "
        "Shipyard hands a null string to ONNX as '': fill nulls in a feature node before "
        "the model (or keep it native with backend='native')",
    ),
    (
        "Unable to find a shape calculator",
        "skl2onnx has no converter for this estimator type: register one with "
        "skl2onnx.update_registered_converter, or keep it native with backend='native'",
    ),
)


def conversion_hint(message: str) -> str:
    """`` (hint: …)`` for a converter message that Shipyard knows how to act on, else ''."""
    for fragment, hint in _HINTS:
        if fragment in message:
            return f" (hint: {hint})"
    return ""


def _convert(
    model: Any, spec: dict[str, Any], columns: Sequence[np.ndarray], float_type: str, root: str
) -> Candidate:
    n_features = sum(1 if c.ndim == 1 else c.shape[1] for c in columns)
    # onnxmltools names an unnamed graph by a random uuid: name it as skl2onnx's to_onnx
    # does, so that the same model converts to the same bytes (reproducible bundles).
    graph_name = f"ONNX({type(model).__name__})"
    if root == "xgboost":
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        onx = onnxmltools.convert_xgboost(
            model,
            name=graph_name,
            initial_types=[("input", FloatTensorType([None, n_features]))],
        )
        inputs = None
    elif root == "lightgbm":
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        onx = onnxmltools.convert_lightgbm(
            model,
            name=graph_name,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            zipmap=False,
        )
        inputs = None
    else:
        from skl2onnx import to_onnx
        from skl2onnx.common import data_types as t

        tensor = {"float64": t.DoubleTensorType, "float32": t.FloatTensorType}[float_type]
        options = {"zipmap": False} if hasattr(model, "predict_proba") else None
        if needs_frame(model):  # it selects columns by name: one ONNX input per column
            inputs = _frame_inputs(columns, spec["feature_names"], float_type)
            initial = [
                (name, t.StringTensorType([None, 1]) if kind == "string" else tensor([None, 1]))
                for name, kind in inputs
            ]
        else:
            inputs = None
            initial = [("input", tensor([None, n_features]))]
        with _skl2onnx_bool_fix(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = to_onnx(model, initial_types=initial, options=options)
    outputs = [o.name for o in onx.graph.output]
    prob = next((n for n in outputs if "prob" in n), None)
    label = next((n for n in outputs if "label" in n), None)
    wanted = (
        prob
        if spec["output"] == "probability"
        else (label if spec["output"] == "label" else outputs[0])
    )
    onnx_spec: dict[str, Any] = {"onnx_output": wanted, "onnx_dtype": float_type}
    if inputs is not None:
        onnx_spec["onnx_inputs"] = [list(pair) for pair in inputs]
    label_output = label if spec["output"] == "probability" else None
    return Candidate(onx.SerializeToString(), onnx_spec, label_output)


def compare(
    native: np.ndarray, converted: np.ndarray, output: str, tolerance: float, rtol: float = 0.0
) -> tuple[bool, float, str]:
    """``(passes, max absolute difference, reason)`` for two prediction arrays.

    Values pass when ``|converted - native| <= tolerance + rtol * |native|`` everywhere.
    """
    if native.shape != converted.shape:
        return False, float("inf"), f"shapes differ: native {native.shape}, onnx {converted.shape}"
    if output == "label" or native.dtype.kind in "OUSb":
        same = bool(np.array_equal(native.astype(str), converted.astype(str)))
        return same, 0.0 if same else float("inf"), "" if same else "class labels differ"
    difference = np.abs(native.astype(np.float64) - converted.astype(np.float64))
    worst = float(np.nanmax(difference)) if difference.size else 0.0
    if np.isnan(native).any() != np.isnan(converted).any():
        return False, float("inf"), "missing values differ"
    allowed = tolerance + rtol * np.abs(native.astype(np.float64))
    if (difference > allowed).any():
        if not rtol:
            return False, worst, f"max difference {worst:.3g} exceeds tolerance {tolerance:g}"
        where = int(np.nanargmax(difference - allowed))
        return (
            False,
            worst,
            (
                f"difference {float(difference.flat[where]):.3g} at value "
                f"{float(native.astype(np.float64).flat[where]):.6g} exceeds tolerance "
                f"{tolerance:g} + rtol {rtol:g} x |value|"
            ),
        )
    return True, worst, ""


def _parity_rows(
    reference: dict[str, dict[str, np.ndarray]], rows: int
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    if rows <= PARITY_ROWS:
        return reference, rows
    chosen = np.sort(np.random.default_rng(0).choice(rows, PARITY_ROWS, replace=False))
    sampled = {t: {c: a[chosen] for c, a in cols.items()} for t, cols in reference.items()}
    return sampled, PARITY_ROWS


def _try_candidates(
    model: Any, spec: dict[str, Any], columns: list[np.ndarray], native: np.ndarray
) -> tuple[Candidate | None, dict[str, Any], float, list[str]]:
    """The first candidate whose predictions match ``native``; else None and the reasons."""
    from ..runtime import feature_matrix, load_onnx

    tolerance = float(spec.get("tolerance", DEFAULT_TOLERANCE))
    rtol = float(spec.get("rtol", 0.0))
    native_labels = None
    if spec["output"] == "probability" and hasattr(model, "predict"):
        native_labels = np.asarray(model.predict(feature_matrix(columns, spec)))
    reasons: list[str] = []
    for candidate in candidates(model, spec, columns):
        precision = candidate.spec["onnx_dtype"]
        if candidate.error:
            reasons.append(f"{precision} conversion failed: {candidate.error}")
            continue
        onnx_spec = {**spec, **candidate.spec}
        try:
            converted = load_onnx(candidate.data, onnx_spec)(columns)
            ok, worst, reason = compare(native, converted, spec["output"], tolerance, rtol)
            if ok and native_labels is not None and candidate.label_output is not None:
                label_spec = {**onnx_spec, "output": "label", "onnx_output": candidate.label_output}
                labels = load_onnx(candidate.data, label_spec)(columns)
                ok, _, reason = compare(native_labels, labels, "label", 0.0)
        except Exception as exc:  # onnxruntime refuses the converted graph
            ok, worst, reason = False, float("inf"), f"{type(exc).__name__}: {str(exc)[:300]}"
        if ok:
            return candidate, onnx_spec, worst, reasons
        reasons.append(f"{precision}: {reason}")
    return None, {}, float("inf"), reasons


def choose_backends(
    nodes: list[dict[str, Any]],
    files: dict[str, bytes],
    packages: dict[str, list[str]],
    pipeline: Any,
    input_info: dict[str, Any],
    reference: dict[str, dict[str, np.ndarray]] | None,
    rows: int,
    backend: str,
) -> None:
    """Replace native model files by ONNX where parity holds; record the outcome in each spec.

    Mutates ``nodes`` (spec fields ``backend``, ``parity`` or ``onnx_rejected``), ``files``
    and ``packages``. Warns for each model kept native; with ``backend="onnx"`` that is
    a ModelError instead.
    """
    import json

    from ..errors import ModelError, UsageError
    from ..runtime import FORMAT_VERSION, Executor

    convertible = [
        n
        for n in nodes
        if n["kind"] == "model" and n["flavor"] in ("sklearn", "xgboost", "lightgbm")
    ]
    if not convertible:
        return
    if reference is None:
        if backend == "onnx":
            raise UsageError("backend 'onnx' needs reference data: parity is proven on it")
        for spec in convertible:
            spec["onnx_rejected"] = "no reference data to prove parity"
        return
    native_files = dict(files)
    native_files["metadata.json"] = json.dumps(
        {"format_version": FORMAT_VERSION, "name": pipeline.name, "version": pipeline.version,
         "nodes": nodes, "outputs": [n["name"] for n in convertible]}
    ).encode()  # fmt: skip
    native_files["input_info.json"] = json.dumps(input_info).encode()
    executor = Executor(native_files)
    tables, count = _parity_rows(reference, rows)
    values = executor.run_columns(tables, count, executor.plan([n["name"] for n in convertible]))
    for spec in convertible:
        name = spec["name"]
        columns = [
            tables[ref.split(".", 1)[0]][ref.split(".", 1)[1]] if "." in ref else values[ref]
            for ref in spec["inputs"]
        ]
        model = pipeline.nodes[name].model
        candidate, onnx_spec, worst, reasons = _try_candidates(model, spec, columns, values[name])
        if candidate is None:
            reason = "; ".join(reasons) or "no converter produced a candidate"
            if backend == "onnx":
                raise ModelError(f"model '{name}' cannot be stored as ONNX: {reason}")
            spec["onnx_rejected"] = reason
            warnings.warn(f"model '{name}' keeps its native form: {reason}", stacklevel=4)
            continue
        del files[spec["file"]]
        path = f"objects/{name}/model.onnx"
        files[path] = candidate.data
        native_flavor = spec["flavor"]
        for key in ("trusted_types", "estimator_class"):
            spec.pop(key, None)
        spec.update(onnx_spec)
        spec.update(
            flavor="onnx",
            file=path,
            backend="onnx",
            converted_from=native_flavor,
            parity={
                "rows": count,
                "max_abs_diff": worst,
                "tolerance": float(spec.get("tolerance", DEFAULT_TOLERANCE)),
                "rtol": float(spec.get("rtol", 0.0)),
                "labels_identical": True,
            },
        )
        packages[name] = ["onnxruntime"]
