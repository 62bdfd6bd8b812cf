"""In-process latency: raw model vs the bundle's main() (native, ONNX) vs mlflow.pyfunc.

Runs in the benchmark environment, which has no Shipyard: bundles are imported from
their extracted folders exactly as a production host would.
"""

from __future__ import annotations

import importlib
import pickle
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPEATS = {1: 400, 1000: 60}


def median_seconds(call: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``call`` over ``repeats`` runs, after warm-up."""
    for _ in range(min(20, repeats)):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_bundle(folder: Path) -> Callable[..., Any]:
    (package,) = [p.name for p in folder.iterdir() if p.is_dir()]
    # The native and ONNX bundles share a package name: forget the other one first.
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(f"{package}.python_dict").main
    finally:
        sys.path.remove(str(folder))


def mlflow_model(name: str, model: Any) -> Any:
    import mlflow.lightgbm
    import mlflow.pyfunc
    import mlflow.sklearn
    import mlflow.xgboost

    path = Path(tempfile.mkdtemp()) / name
    if name == "xgboost":
        mlflow.xgboost.save_model(model, path)
    elif name == "lightgbm":
        mlflow.lightgbm.save_model(model, path)
    else:
        mlflow.sklearn.save_model(
            model, path, pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle"
        )
    return mlflow.pyfunc.load_model(str(path))


def main(work: Path) -> None:
    warnings.simplefilter("ignore")
    state = pickle.loads((work / "models.pkl").read_bytes())
    frame = state["frame"]
    rows_out = []
    for name, (model, columns) in state["models"].items():
        native_main = load_bundle(work / "bundles" / f"{name}-native")
        onnx_main = load_bundle(work / "bundles" / f"{name}-onnx")
        pyfunc = mlflow_model(name, model)
        for rows in (1, 1000):
            sample = frame.sample(n=rows, replace=rows > len(frame), random_state=rows)[columns]
            matrix = sample if name == "column_transformer" else sample.to_numpy()
            arrays = {"tumours": {c: sample[c].to_numpy() for c in columns}}
            lists = {"tumours": {c: sample[c].tolist() for c in columns}}
            repeats = REPEATS[rows]
            # Default arguments bind this iteration's values into each timed call.
            timings = {
                "raw model": median_seconds(lambda m=model, x=matrix: m.predict_proba(x), repeats),
                "bundle native (arrays)": median_seconds(
                    lambda f=native_main, a=arrays: f(a), repeats
                ),
                "bundle onnx (arrays)": median_seconds(lambda f=onnx_main, a=arrays: f(a), repeats),
                "bundle onnx (lists)": median_seconds(lambda f=onnx_main, a=lists: f(a), repeats),
                "mlflow.pyfunc": median_seconds(lambda p=pyfunc, s=sample: p.predict(s), repeats),
            }
            rows_out.append((name, rows, timings, state["report"].get((name, "onnx"))))
    print()
    header = (
        f"{'model':24s} {'rows':>5s}  "
        f"{'raw':>9s} {'native':>9s} {'onnx':>9s} {'onnx/lst':>9s} {'mlflow':>9s}  "
        f"{'onnx/raw':>8s} {'nat/raw':>8s} {'mlflow/onnx':>11s}  stored"
    )
    print(header)
    print("-" * len(header))
    for name, rows, t, stored in rows_out:
        onnx_ratio = t["bundle onnx (arrays)"] / t["raw model"]
        native_ratio = t["bundle native (arrays)"] / t["raw model"]
        mlflow_ratio = t["mlflow.pyfunc"] / t["bundle onnx (arrays)"]
        micro = [
            t[k] * 1e6
            for k in (
                "raw model",
                "bundle native (arrays)",
                "bundle onnx (arrays)",
                "bundle onnx (lists)",
                "mlflow.pyfunc",
            )
        ]
        print(
            f"{name:24s} {rows:5d}  "
            + " ".join(f"{m:8.1f}µ" for m in micro)
            + f"  {onnx_ratio:8.2f} {native_ratio:8.2f} {mlflow_ratio:11.2f}  {stored}"
        )
    print(
        "\nmedian µs per call; "
        "ratios < 1 mean the bundle is faster than the column it is divided by."
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
