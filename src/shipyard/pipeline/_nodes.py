"""Pipeline nodes: features, rules and models.

A node reads earlier nodes or input columns, each named by a reference: a node
name, ``table.column``, or a bare column name that only one input table has.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphError
from ..runtime import TYPES
from ._capture import capture
from ._flavors import OnnxModel, classes_of, label_dtype
from ._schema import check_identifier


@dataclass
class Node:
    """One step of a pipeline. ``inputs`` maps the node's arguments to references."""

    name: str
    kind: str
    inputs: dict[str, str | None]
    dtype: str
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, f"{self.kind}")
        if self.dtype not in TYPES:
            raise GraphError(
                f"{self.kind} '{self.name}': unknown type {self.dtype!r} "
                f"(types: {', '.join(TYPES)})"
            )

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass
class FunctionNode(Node):
    """A feature or a rule: a vectorised function over column arrays, captured as source.

    ``app_config`` maps arguments to the app config keys that fill them where the version
    runs with app config (``{argument: key}``); the argument's default is used otherwise.
    """

    function: Callable[..., Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    function_name: str = ""
    app_config: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelNode(Node):
    """A model over earlier nodes and columns; ``output`` is probability, label or value."""

    model: Any = None
    output: str = "value"
    spec: dict[str, Any] = field(default_factory=dict)


def _function_node(
    kind: str,
    function: Callable[..., Any],
    name: str | None,
    inputs: Mapping[str, str] | Sequence[str] | None,
    dtype: str,
    params: Mapping[str, Any] | None,
    description: str | None,
    app_config: Mapping[str, str] | Sequence[str] | None = None,
) -> FunctionNode:
    node_name = name or str(getattr(function, "__name__", ""))
    what = f"{kind} '{node_name}'"
    params = dict(params or {})
    try:
        json.dumps(params)
    except TypeError as exc:
        raise GraphError(
            f"{what}: params must be JSON values (numbers, strings, lists): {exc}"
        ) from None
    source, function_name = capture(function, what)
    signature = inspect.signature(function)
    for param in params:
        if param not in signature.parameters:
            raise GraphError(
                f"{what}: params names '{param}', which is not an argument of the function"
            )
    configured = _app_config_arguments(what, signature, params, app_config)
    args = [p for p in signature.parameters if p not in params and p not in configured]
    if isinstance(inputs, Mapping):
        taken = [a for a in inputs if a in configured]
        if taken:
            raise GraphError(f"{what}: '{taken[0]}' is read from app config, not an input")
        unknown = [a for a in inputs if a not in args]
        if unknown:
            raise GraphError(
                f"{what}: inputs names '{unknown[0]}', which is not an argument of the function"
            )
        mapping: dict[str, str | None] = {a: inputs.get(a) for a in args}
    elif inputs is not None:
        if len(inputs) != len(args):
            raise GraphError(
                f"{what}: {len(inputs)} inputs given for {len(args)} arguments ({', '.join(args)})"
            )
        mapping = dict(zip(args, inputs, strict=True))
    else:
        mapping = dict.fromkeys(args)
    return FunctionNode(
        name=node_name,
        kind=kind,
        inputs=mapping,
        dtype=dtype,
        description=description or (inspect.getdoc(function) or "").split("\n")[0],
        function=function,
        params=params,
        source=source,
        function_name=function_name,
        app_config=configured,
    )


def _app_config_arguments(
    what: str,
    signature: inspect.Signature,
    params: Mapping[str, Any],
    app_config: Mapping[str, str] | Sequence[str] | None,
) -> dict[str, str]:
    """``app_config`` as ``{argument: key}``: a list names arguments read under their own name.

    Each must be an argument with a default (in the signature or ``params``): a bundle runs
    without app config too (a notebook, a bundle file, a version given none).
    """
    if app_config is None:
        return {}
    if isinstance(app_config, str):
        raise GraphError(f"{what}: app_config must be a list of arguments or a mapping, not a str")
    pairs = app_config if isinstance(app_config, Mapping) else {a: a for a in app_config}
    configured: dict[str, str] = {}
    for argument, key in pairs.items():
        if argument not in signature.parameters:
            raise GraphError(
                f"{what}: app_config names '{argument}', which is not an argument of the function"
            )
        if not isinstance(key, str) or not key:
            raise GraphError(f"{what}: the app config key of '{argument}' must be a name")
        default = signature.parameters[argument].default
        if argument not in params and default is inspect.Parameter.empty:
            raise GraphError(
                f"{what}: '{argument}' reads app config '{key}' and needs a default for when "
                "there is none (in the signature or in params)"
            )
        configured[str(argument)] = key
    return configured


def _decorator(kind: str, default_dtype: str) -> Callable[..., Any]:
    def decorate(
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        inputs: Mapping[str, str] | Sequence[str] | None = None,
        dtype: str = default_dtype,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        app_config: Mapping[str, str] | Sequence[str] | None = None,
    ) -> Any:
        def wrap(fn: Callable[..., Any]) -> FunctionNode:
            return _function_node(kind, fn, name, inputs, dtype, params, description, app_config)

        return wrap(function) if function is not None else wrap

    decorate.__name__ = kind
    decorate.__doc__ = (
        f"Make a {kind} node from a vectorised function "
        f"(use as ``@{kind}`` or ``@{kind}(...)``).\n\n"
        "Each argument receives a numpy array of one input (matched by name unless ``inputs``\n"
        "maps it); ``params`` are JSON constants passed as keyword arguments; ``dtype`` is the\n"
        f"type of the returned column (default {default_dtype}). ``app_config`` names arguments\n"
        "filled from the app config of the version being served or batch-scored (a list of\n"
        "arguments read under their own names, or ``{argument: key}``); each needs a default,\n"
        "used when that app config has no such key. The source is captured into the bundle:\n"
        "reading a global or closure that would not exist there raises CaptureError."
    )
    return decorate


feature = _decorator("feature", "float64")
rule = _decorator("rule", "string")


def model(
    name: str,
    estimator: Any,
    *,
    features: Sequence[str] | None = None,
    output: str | None = None,
    positive_class: Any = None,
    description: str = "",
    tolerance: float = 1e-5,
    rtol: float = 0.0,
) -> ModelNode:
    """Make a model node.

    ``estimator`` is a fitted scikit-learn estimator or Pipeline, an XGBoost or LightGBM
    model, a ``shipyard.OnnxModel``, or a plain function ``f(X) -> values``.
    ``features`` are the references that form its input matrix, in order (default: the
    names it was fitted on). ``output`` is ``probability`` (classifiers; binary gives the
    probability of ``positive_class``, default the last class), ``label`` or ``value``.
    ``tolerance`` is the largest absolute difference from the native predictions on the
    reference data that still lets export choose the faster ONNX form (labels must match);
    ``rtol`` adds a share of each native value to it (``|onnx - native| <= tolerance +
    rtol * |native|``, as ``numpy.isclose``), for regressors whose targets are large.
    Raises GraphError when the combination cannot work.
    """
    classes = classes_of(estimator)
    if classes is None and _is_lightgbm_booster(estimator):
        # A raw Booster does not know its labels; its trees per iteration give the class count.
        per_iteration = int(estimator.num_model_per_iteration())
        objective = str(estimator.params.get("objective", ""))
        if per_iteration > 1 or objective.startswith(("binary", "multi")):
            classes = list(range(max(per_iteration, 2)))
    if output is None:
        probabilistic = hasattr(estimator, "predict_proba") or isinstance(estimator, OnnxModel)
        if probabilistic and classes is not None:
            output = "probability"
        else:
            output = "label" if classes is not None else "value"
    if output not in ("probability", "label", "value"):
        raise GraphError(
            f"model '{name}': output must be probability, label or value, not {output!r}"
        )
    if output == "probability" and not (
        isinstance(estimator, OnnxModel)
        or hasattr(estimator, "predict_proba")
        or _is_lightgbm_booster(estimator)
    ):
        raise GraphError(
            f"model '{name}': output='probability' needs a classifier with predict_proba"
        )
    for option, value in (("tolerance", tolerance), ("rtol", rtol)):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise GraphError(f"model '{name}': {option} must be a number in [0, 1), not {value!r}")
    spec: dict[str, Any] = {"output": output, "tolerance": float(tolerance)}
    if rtol:
        spec["rtol"] = float(rtol)
    if output == "probability":
        if classes is not None:
            if positive_class is None:
                positive_class = classes[-1]
            if positive_class not in classes:
                raise GraphError(
                    f"model '{name}': positive_class {positive_class!r} is not one of {classes}"
                )
            spec.update(
                classes=classes,
                binary=len(classes) == 2,
                positive_index=classes.index(positive_class),
            )
            dtype = "float64" if len(classes) == 2 else "list[float64]"
        else:
            spec.update(binary=True, positive_index=1)
            dtype = "float64"
    elif output == "label":
        spec["classes"] = classes
        dtype = label_dtype(classes)
    else:
        dtype = "float64"
    if features is None:
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is None:
            raise GraphError(
                f"model '{name}': say which inputs form its matrix with features=[...] "
                "(it was not fitted on named columns)"
            )
        features = [str(f) for f in fitted]
    features = list(features)
    if not features:
        raise GraphError(f"model '{name}' has no features")
    expected = getattr(estimator, "n_features_in_", None)
    # One reference may be a list[float64] column that fills the whole matrix by itself.
    if isinstance(expected, int) and len(features) > 1 and expected != len(features):
        raise GraphError(
            f"model '{name}' was fitted on {expected} features but {len(features)} are given"
        )
    return ModelNode(
        name=name,
        kind="model",
        inputs={f"x{i}": ref for i, ref in enumerate(features)},
        dtype=dtype,
        description=description,
        model=estimator,
        output=output,
        spec=spec,
    )


def _is_lightgbm_booster(estimator: Any) -> bool:
    return (
        type(estimator).__module__.startswith("lightgbm") and type(estimator).__name__ == "Booster"
    )


def needs_frame(estimator: Any) -> bool:
    """True when a model must be called with a pandas DataFrame (it selects columns by name)."""
    stack = [estimator]
    while stack:
        current = stack.pop()
        if type(current).__name__ == "ColumnTransformer":
            return True
        for attr in ("steps", "transformers", "transformer_list"):
            for item in getattr(current, attr, None) or []:
                if isinstance(item, tuple) and len(item) >= 2:
                    stack.append(item[1])
    return False
