"""Serving over HTTP on loopback: Shipyard vs MLflow's scoring server vs BentoML vs a constant.

For LogisticRegression and HistGradientBoostingClassifier on load_breast_cancer (trained
by prepare.py), each server runs with one worker on 127.0.0.1 and ``wrk`` POSTs one row
(each server's own JSON format) at concurrency 1 and 32 for the same duration. Prints
req/s, p50 and p99 and the ratios to Shipyard. The peers run from the benchmark
environment (.venv-bench); Shipyard and the hello-world ceiling (Starlette on uvicorn,
returning a constant) run from Shipyard's.

    python benchmarks/serving.py WORK --bench-python .venv-bench/bin/python [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("logistic_regression", "hist_gradient_boosting")
CONCURRENCY = (1, 32)
START_TIMEOUT = 180.0

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""

HELLO = """from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def constant(request):
    return Response(b'{"predictions": [0.5]}', media_type="application/json")


app = Starlette(routes=[Route("/predict", constant, methods=["POST"])])
"""

BENTO = """import os
import pickle

import bentoml
import numpy as np


@bentoml.service(workers=1)
class Bench:
    def __init__(self) -> None:
        with open(os.environ["BENCH_MODELS"], "rb") as handle:
            self.model = pickle.load(handle)["models"][os.environ["BENCH_MODEL"]][0]

    @bentoml.api
    def predict(self, columns: list[str], data: list[list[float]]) -> list[float]:
        return self.model.predict_proba(np.asarray(data, dtype=np.float64))[:, 1].tolist()
"""

SAVE_MLFLOW = """import pickle, sys, warnings
warnings.simplefilter("ignore")
import mlflow.sklearn
models, name, target = sys.argv[1], sys.argv[2], sys.argv[3]
with open(models, "rb") as handle:
    model = pickle.load(handle)["models"][name][0]
# cloudpickle, as inprocess.py does: MLflow 3's default (skops) refuses HistGradientBoosting's
# tree predictor unless it is named as trusted.
mlflow.sklearn.save_model(
    model, target, pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle"
)
"""


@dataclass(frozen=True)
class Server:
    """How to start one server and what to POST to it."""

    name: str
    command: list[str]
    url: str
    body: bytes
    cwd: Path | None = None
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class Result:
    model: str
    server: str
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {process.returncode}")
        try:
            response = httpx.post(
                server.url,
                content=server.body,
                headers={"content-type": "application/json"},
                timeout=5,
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} did not answer within {START_TIMEOUT:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it was started in its own session), then kill."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(
    server: Server, concurrency: int, seconds: int, work: Path
) -> tuple[float, float, float, int]:
    body = work / f"body-{server.name}.json"
    body.write_bytes(server.body)
    script = work / "post.lua"
    script.write_text(LUA)
    threads = 1 if concurrency == 1 else 2
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            server.url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        timeout=seconds + 60,
    )
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(g) for g in socket_errors.groups())
    return rate, p50, p99, count


def measure(server: Server, model: str, seconds: int, work: Path) -> list[Result]:
    print(f"  {model} / {server.name}: starting …", flush=True)
    log = work / f"server-{model}-{server.name.split()[0]}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            server.command,
            cwd=server.cwd,
            env={**os.environ, **(server.env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_until_answering(server, process)
        except RuntimeError as exc:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{exc}: {' / '.join(tail)} (log: {log})") from None
        # Warm-up: let every server reach its steady state before measuring.
        run_wrk(server, 32, 2, work)
        results = []
        for concurrency in CONCURRENCY:
            rate, p50, p99, errors = run_wrk(server, concurrency, seconds, work)
            results.append(Result(model, server.name, concurrency, rate, p50, p99, errors))
            print(
                f"    c={concurrency:<3d} {rate:9.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
                + (f"  ERRORS {errors}" if errors else ""),
                flush=True,
            )
        return results
    finally:
        stop(process)


def servers(
    model: str, work: Path, bench_python: Path, scratch: Path, failures: list[str]
) -> list[Server]:
    """Shipyard (ONNX and native bundles), MLflow and BentoML serving ``model``.

    A peer that cannot be set up is left out and named in ``failures``.
    """
    with (work / "models.pkl").open("rb") as handle:
        frame = pickle.load(handle)["frame"]
    columns = [c for c in frame.columns if c != "size_band"]
    row = [float(v) for v in frame[columns].iloc[0]]
    ours = json.dumps({"tumours": {c: [v] for c, v in zip(columns, row, strict=True)}}).encode()
    split = json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
    bento = json.dumps({"columns": columns, "data": [row]}).encode()
    venv_bin = Path(sys.executable).parent
    bench_bin = bench_python.parent
    # The peers start their own tools (MLflow runs `uvicorn`): their environment goes first.
    peer_path = {"PATH": f"{bench_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    found: list[Server] = []
    for backend in ("onnx", "native"):
        bundle = work / "dist" / backend / f"bench_{model}-1.0.0.tar.gz"
        port = free_port()
        found.append(
            Server(
                f"shipyard ({backend})",
                [str(venv_bin / "shipyard"), "serve", "--bundle", str(bundle), "--port", str(port)],
                f"http://127.0.0.1:{port}/api/v1/projects/local/environments/local/models/bench_{model}/predict",
                ours,
            )
        )
    mlflow_model = scratch / f"mlflow-{model}"
    saved = subprocess.run(
        [str(bench_python), "-c", SAVE_MLFLOW, str(work / "models.pkl"), model, str(mlflow_model)],
        capture_output=True,
        text=True,
        check=False,
    )
    if saved.returncode != 0:
        failures.append(f"{model} / mlflow: saving the model failed: {saved.stderr[-300:]}")
    port = free_port()
    mlflow_server = Server(
        "mlflow",
        [
            str(bench_bin / "mlflow"),
            "models",
            "serve",
            "-m",
            str(mlflow_model),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        f"http://127.0.0.1:{port}/invocations",
        split,
        env=peer_path,
    )
    if saved.returncode == 0:
        found.append(mlflow_server)
    service = scratch / "bento"
    service.mkdir(exist_ok=True)
    (service / "service.py").write_text(BENTO)
    port = free_port()
    found.append(
        Server(
            "bentoml",
            [
                str(bench_bin / "bentoml"),
                "serve",
                "service:Bench",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            f"http://127.0.0.1:{port}/predict",
            bento,
            cwd=service,
            env={
                "BENCH_MODELS": str(work / "models.pkl"),
                "BENCH_MODEL": model,
                "BENTOML_HOME": str(scratch / "bentoml-home"),
                **peer_path,
            },
        )
    )
    return found


def hello_server(scratch: Path) -> Server:
    (scratch / "hello.py").write_text(HELLO)
    port = free_port()
    return Server(
        "hello-world",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hello:app",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}/predict",
        b'{"x": 1}',
        cwd=scratch,
    )


def table(results: list[Result]) -> str:
    lines = [
        "| model | server | c | req/s | p50 ms | p99 ms | req/s vs Shipyard | p50 vs Shipyard |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ours = {(r.model, r.concurrency): r for r in results if r.server == "shipyard (onnx)"}
    for r in results:
        base = ours.get((r.model, r.concurrency)) or next(
            (o for (m, c), o in ours.items() if c == r.concurrency), None
        )
        ratio = f"{r.requests_per_second / base.requests_per_second:.2f}x" if base else "-"
        latency = f"{r.p50_ms / base.p50_ms:.2f}x" if base else "-"
        errors = f" ({r.errors} errors)" if r.errors else ""
        lines.append(
            f"| {r.model} | {r.server}{errors} | {r.concurrency} | {r.requests_per_second:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {ratio} | {latency} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--bench-python", type=Path, required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated server names to run")
    args = parser.parse_args()
    work = args.work.absolute()
    if shutil.which("wrk") is None:
        print("serving benchmark skipped: wrk is not installed (apt-get install -y wrk)")
        return
    scratch = Path(tempfile.mkdtemp(prefix="shipyard-bench-serving-"))
    results: list[Result] = []
    failures: list[str] = []
    wanted = {s for s in args.only.split(",") if s}
    started = time.monotonic()
    try:
        for model in MODELS:
            for server in servers(model, work, args.bench_python.absolute(), scratch, failures):
                if wanted and not any(w in server.name for w in wanted):
                    continue
                try:
                    results += measure(server, model, args.seconds, work)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    failures.append(f"{model} / {server.name}: {exc}")
                    print(f"    FAILED: {exc}", flush=True)
        hello = hello_server(scratch)
        if not wanted or "hello" in args.only:
            results += measure(hello, "(constant)", args.seconds, work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        report(results, failures, args.seconds, started)


def report(results: list[Result], failures: list[str], seconds: int, started: float) -> None:
    """Print the table of what was measured (also after a failure) and what was not."""
    print()
    print(
        f"Serving one row over loopback, wrk for {seconds} s per cell, one server worker "
        f"({time.monotonic() - started:.0f} s in all; load average {os.getloadavg()[0]:.1f}):"
    )
    print(table(results))
    for failure in failures:
        print(f"not measured: {failure}")


if __name__ == "__main__":
    main()
