"""Container images: ``shipyard deploy image`` vs ``mlflow models generate-dockerfile``.

The same fitted model (prepare.py's LogisticRegression on load_breast_cancer) in both, each
image built from the same local base (Debian bookworm with python3, made with debootstrap:
no image registry is reachable here; see tests/deploy/_containers.py). Shipyard's image
is built twice, from the native bundle (scikit-learn, as MLflow's) and from the ONNX one.
Printed: image size, build time, and start-to-first-prediction (from ``podman run`` to the
first 200 answer of a one-row prediction; the median of ``--runs`` starts), with ratios
to Shipyard's native image.

MLflow's Dockerfile is written by MLflow and changed only where the base differs: its
``FROM`` names the local base, and one line makes a venv, since the base has ``python3``
but neither ``python`` nor ``pip`` on PATH (``python:X-slim`` has both). It installs
nginx with apt and MLflow with pip while it builds, so its build runs with the network
(and the build machine's CA bundle and pip.conf mounted, for the TLS proxy here);
Shipyard's builds with ``--network none``. Both run with podman and slirp4netns, a port
forwarded to 127.0.0.1.

    python benchmarks/image.py WORK --bench-python .venv-bench/bin/python [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.deploy._containers import (  # noqa: E402
    APT,
    container_settings,
    ensure_base_image,
    missing_tools,
)

from serving import SAVE_MLFLOW, free_port  # noqa: E402  (benchmarks/serving.py)

MODEL = "logistic_regression"
START_TIMEOUT = 300.0
PODMAN = ["podman", "--log-level", "error"]


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    port: int  # the port it serves inside the container
    url: str  # the path of its prediction route
    body: dict[str, object]
    build_seconds: float
    size_bytes: int
    env: tuple[str, ...] = ()


def run(command: list[str], env: dict[str, str], timeout: float | None = None) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed: {done.stderr[-2000:]}")
    return str(done.stdout)


def image_size(tag: str, env: dict[str, str]) -> int:
    return int(run([*PODMAN, "image", "inspect", "--format", "{{.Size}}", tag], env).strip())


def one_row(work: Path) -> tuple[list[str], list[float]]:
    import pickle

    with (work / "models.pkl").open("rb") as handle:
        saved = pickle.load(handle)
    columns = saved["models"][MODEL][1]
    return columns, [float(v) for v in saved["frame"][columns].iloc[0]]


def shipyard_image(
    work: Path, backend: str, base: str, env: dict[str, str], scratch: Path
) -> Image:
    """Register the bundle in a fresh embedded registry, then ``shipyard deploy image``."""
    home = scratch / f"registry-{backend}"
    here = {**env, "SHIPYARD_HOME": str(home)}
    for name in ("SHIPYARD_URL", "SHIPYARD_DATABASE_URL", "SHIPYARD_ARTIFACT_STORE"):
        here.pop(name, None)
    bundle = work / "dist" / backend / f"bench_{MODEL}-1.0.0.tar.gz"
    setup = f"""
from shipyard.registry import Registry
with Registry.open() as registry:
    registry.create_project("bench", environments=["production"])
    version = registry.register_model("bench", {str(bundle)!r})
    registry.tag("bench", version.model, version.version_id)
    # prepare.py's bundles are unsigned; this measures the image, not the trust.
    registry.set_setting("require_signature", False, "bench", "production")
    registry.add_component("bench", "production", version.model)
"""
    run([sys.executable, "-c", setup], here)
    tag = f"localhost/bench-shipyard-{backend}:1"
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    started = time.perf_counter()
    out = run(
        [shipyard, "deploy", "image", "-p", "bench", "-e", "production", "--json", "-t", tag]
        + ["--base-image", base, "-o", str(scratch / f"context-{backend}")],
        here,
        timeout=3600,
    )
    seconds = time.perf_counter() - started  # wheels collected, then the build itself
    built = json.loads(out)["built"]
    columns, values = one_row(work)
    return Image(
        f"shipyard ({backend})",
        tag,
        8000,
        f"/api/v1/projects/bench/environments/production/models/bench_{MODEL}/predict",
        {"tumours": {c: [v] for c, v in zip(columns, values, strict=True)}},
        seconds,
        int(built["size_bytes"]),
    )


def mlflow_image(
    work: Path, bench_python: Path, base: str, env: dict[str, str], scratch: Path
) -> Image:
    """Save the model with MLflow, generate its Dockerfile, swap the base, build it."""
    model = scratch / "mlflow-model"
    run([str(bench_python), "-c", SAVE_MLFLOW, str(work / "models.pkl"), MODEL, str(model)], env)
    out = scratch / "mlflow-context"
    mlflow = str(bench_python.with_name("mlflow"))
    run([mlflow, "models", "generate-dockerfile", "-m", str(model), "-d", str(out)]
        + ["--env-manager", "local"], env)  # fmt: skip
    lines = (out / "Dockerfile").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    lines[first : first + 1] = [
        f"FROM {base}",
        "RUN python3 -m venv /opt/python",
        "ENV PATH=/opt/python/bin:$PATH",
    ]
    (out / "Dockerfile").write_text("\n".join(lines) + "\n")
    tag = "localhost/bench-mlflow:1"
    mounts = []
    for path in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf"):
        if Path(path).exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    started = time.perf_counter()
    run(
        ["buildah", "bud", "--format", "docker", "--network", "host", "--pull=never", *mounts]
        + ["-t", tag, str(out)],
        env,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    columns, values = one_row(work)
    return Image(
        "mlflow",
        tag,
        8080,
        "/invocations",
        {"dataframe_split": {"columns": columns, "data": [values]}},
        seconds,
        image_size(tag, env),
        ("MLFLOW_MODELS_WORKERS=1",),  # one worker, as Shipyard's image runs
    )


def first_prediction(image: Image, env: dict[str, str]) -> float:
    """Seconds from ``podman run`` to the first 200 answer to a prediction."""
    port = free_port()
    name = f"bench-{os.getpid()}-{port}"
    variables = [arg for value in image.env for arg in ("-e", value)]
    started = time.perf_counter()
    run(
        [*PODMAN, "run", "-d", "--name", name, "--network", "slirp4netns:port_handler=slirp4netns"]
        + ["-p", f"127.0.0.1:{port}:{image.port}", *variables, image.tag],
        env,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}{image.url}", json=image.body, timeout=5
                )
                if answer.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{image.name} gave no prediction in {START_TIMEOUT:.0f} s")
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "5", name], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--bench-python", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    missing = missing_tools() + [t for t in ("buildah", "slirp4netns") if not shutil.which(t)]
    if missing:
        print(f"image benchmark skipped: it needs {', '.join(missing)} (Debian: {APT})")
        return
    if os.geteuid() != 0:
        print("image benchmark skipped: debootstrap and rootful podman need root")
        return
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-image-") as folder:
        scratch = Path(folder)
        env = {**os.environ, **container_settings(scratch)}
        base = ensure_base_image(env)
        images = []
        try:
            for backend in ("native", "onnx"):
                images.append(shipyard_image(args.work, backend, base, env, scratch))
            images.append(mlflow_image(args.work, args.bench_python, base, env, scratch))
            starts = {i.name: [first_prediction(i, env) for _ in range(args.runs)] for i in images}
            base_size = image_size(base, env)
        finally:
            for image in images:
                subprocess.run([*PODMAN, "rmi", "-f", image.tag], env=env, capture_output=True)
    print(f"\ncontainer images, {MODEL}, base {base} ({base_size / 1e6:.0f} MB)")
    print(
        f"{'image':20s} {'size MB':>8s} {'above base':>10s} {'build s':>8s} {'first answer s':>15s}"
    )
    medians = {name: statistics.median(times) for name, times in starts.items()}
    for image in images:
        above = (image.size_bytes - base_size) / 1e6
        print(
            f"{image.name:20s} {image.size_bytes / 1e6:8.0f} {above:10.0f}"
            f" {image.build_seconds:8.1f} {medians[image.name]:15.2f}"
        )
    ours, theirs = images[0], images[-1]
    print(
        f"mlflow / shipyard (native): size {theirs.size_bytes / ours.size_bytes:.2f}x, above the "
        f"base {(theirs.size_bytes - base_size) / (ours.size_bytes - base_size):.2f}x, first "
        f"prediction {medians[theirs.name] / medians[ours.name]:.2f}x (median of {args.runs})"
    )


if __name__ == "__main__":
    main()
