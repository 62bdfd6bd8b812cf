"""The whole journey of ``shipyard demo``, step by step, on embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.table import Table as RichTable

from ..artifact import generate_key_pair
from ..errors import ShipyardError
from ..runtime import Artifact
from . import _registry_steps
from ._app_step import app_step
from ._batch_step import batch_step
from ._deploy_step import deploy_step
from ._display import Display
from ._genai_step import genai_step
from ._monitor_step import monitor_step
from ._pipeline import build_pipeline, reference
from ._serve_step import serve_step

ROWS = (0, 13, 19, 81, 250)  # refer, refer, routine, review, refer: rows of the data set


def run_demo(workdir: Path, display: Display) -> None:
    """Train, export a signed bundle, run it as production would, register and promote it,
    score a file with it, serve it, put a web app beside it, run a GenAI pipeline, monitor
    and render production, printing each step on ``display``.

    Keys, bundles, the production copy and a fresh embedded registry (``.shipyard``) go
    to ``workdir``. Raises ShipyardError when a step does not give what it should.
    """
    console = display.console
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1. train a model and define the pipeline")
    pipeline = build_pipeline()
    console.print(
        f"{pipeline.name} {pipeline.version}: nodes {', '.join(pipeline.run_order())}; "
        f"outputs {pipeline.outputs}"
    )

    console.rule("[bold]2. export a signed bundle")
    keys = workdir / "keys"
    private, public = keys / "shipyard.key", keys / "shipyard.pub"
    if not private.exists():
        private, public = generate_key_pair(keys)
    bundle = pipeline.export(workdir / "dist", reference=reference(), sign_key=private)
    console.print(f"bundle: {bundle} ({bundle.stat().st_size:,} bytes)")

    console.rule("[bold]3. verify it (hashes and Ed25519 signature)")
    artifact = Artifact(bundle)
    report = artifact.verify(public)
    console.print(f"[green]OK[/]: {report['files']} files match MANIFEST.json; signature valid")

    console.rule("[bold]4. run it as production does: extracted, no Shipyard import")
    production = workdir / "production"
    artifact.extract(None, production)
    data = reference()
    rows = {
        "tumours": {name: [values[i] for i in ROWS] for name, values in data["tumours"].items()}
    }
    request = workdir / "request.json"
    request.write_text(json.dumps(rows))
    env = dict(os.environ, SHIPYARD_PUBLIC_KEY=str(public.resolve()))
    with request.open() as stdin:
        done = subprocess.run(
            [sys.executable, "-m", f"{artifact.package}.python_dict"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=production,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise ShipyardError(f"the production run failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    console.print(f"$ cd {production} && python -m {artifact.package}.python_dict < {request.name}")
    grid = RichTable(title="tumour triage")
    for column in ("row", "mean_radius", "worst_concave_points", "p_malignant", "decision"):
        grid.add_column(column, justify="right" if column != "decision" else "left")
    for i, row in enumerate(ROWS):
        grid.add_row(
            str(row),
            f"{rows['tumours']['mean_radius'][i]:.2f}",
            f"{rows['tumours']['worst_concave_points'][i]:.3f}",
            f"{result['p_malignant']['values'][i]:.4f}",
            result["decision"]["values"][i],
        )
    console.print(grid)
    # The notebook runs the native model; the bundle runs the ONNX form export proved
    # equal on the reference data (labels identical, probabilities within tolerance).
    notebook = pipeline.run(rows)
    parity = artifact.metadata["nodes"][1].get("parity") or {"tolerance": 0.0}
    gap = max(
        abs(a - b)
        for a, b in zip(
            notebook["p_malignant"]["values"], result["p_malignant"]["values"], strict=True
        )
    )
    same = notebook["decision"] == result["decision"] and gap <= parity["tolerance"]
    backend = artifact.metadata["backend"]["p_malignant"]
    console.print(
        f"notebook (native) vs production ({backend}): decisions identical, max |diff| {gap:.1e}"
        if same
        else "[red]notebook and production differ[/]"
    )
    if not same:
        raise ShipyardError("the bundle's results differ from the pipeline's")
    _registry_steps.run(workdir, pipeline, bundle, (private, public), display)
    console.rule("[bold]11. score a file of 100,000 rows with the production model")
    batch_step(workdir, bundle, console, display.progress)
    console.rule("[bold]12. serve production on localhost and ask it for one prediction")
    serve_step(workdir, _registry_steps.PROJECT, "production", console, public_key=public)
    console.rule(
        "[bold]13. an app beside the model: create it from the web template, register, "
        "promote both, predict through it"
    )
    app_step(workdir, _registry_steps.PROJECT, _registry_steps.CHAIN, (private, public), display)
    console.rule("[bold]14. GenAI: retrieve -> prompt -> llm -> rule, on a local stand-in endpoint")
    genai_step(workdir, console)
    console.rule("[bold]15. monitor production: drifted traffic, its drift table, the report")
    monitor_step(workdir, _registry_steps.PROJECT, "production", console, public_key=public)
    console.rule("[bold]16. render production for Kubernetes (Kustomize overlay)")
    deploy_step(workdir, _registry_steps.PROJECT, "production", console)
    console.rule("[bold]done")
    console.print(f"inspect it: shipyard artifact inspect {bundle} --public-key {public}")
