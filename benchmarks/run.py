"""``make bench``: build the peers' environment, prepare models and bundles, run each benchmark."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
WORK = ROOT / "benchmarks" / ".work"
# Libraries both sides must share at the same version, and the peers we measure against.
SHARED = ("numpy", "pandas", "scikit-learn", "xgboost", "lightgbm", "onnxruntime", "skops", "scipy")
PEERS = ("mlflow>=3,<4", "bentoml>=1.4,<2", f"pyspark=={metadata.version('pyspark')}")


def bench_python() -> Path:
    """The benchmark environment's python, (re)built when the pinned versions change."""
    pins = [f"{name}=={metadata.version(name)}" for name in SHARED]
    wanted = hashlib.sha256("\n".join([*pins, *PEERS]).encode()).hexdigest()
    stamp = BENCH_VENV / ".installed"
    python = BENCH_VENV / "bin" / "python"
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"building {BENCH_VENV} (peers: {', '.join(PEERS)}) …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins, *PEERS], check=True)
    stamp.write_text(wanted)
    return python


def main() -> None:
    python = bench_python()
    WORK.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONHASHSEED="0")
    print("preparing models and bundles …", flush=True)
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "prepare.py"), str(WORK)], check=True, env=env
    )
    subprocess.run(
        [str(python), str(ROOT / "benchmarks" / "inprocess.py"), str(WORK)], check=True, env=env
    )
    if shutil.which("wrk") is None:
        print("serving benchmark skipped: it needs wrk (Debian: apt-get install -y wrk)")
    else:
        serving = ROOT / "benchmarks" / "serving.py"
        command = [sys.executable, str(serving), str(WORK), "--bench-python", str(python)]
        subprocess.run(command, check=True, env=env)
    print("\nbatch scoring, 1,000,000 rows …", flush=True)
    batch = [sys.executable, str(ROOT / "benchmarks" / "batch.py"), str(WORK), str(python)]
    subprocess.run(batch, check=True, env=env)
    print("\ncontainer images: shipyard deploy image vs MLflow's Dockerfile …", flush=True)
    image = [sys.executable, str(ROOT / "benchmarks" / "image.py"), str(WORK)]
    subprocess.run([*image, "--bench-python", str(python)], check=True, env=env)


if __name__ == "__main__":
    main()
