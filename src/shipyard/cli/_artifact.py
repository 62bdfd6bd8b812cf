"""``shipyard artifact``: build, inspect, verify, lineage, run and extract bundles."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table as RichTable

from ..errors import ShipyardError, UsageError
from ..runtime import Artifact
from ._data import read_dataset
from ._output import console, print_json
from ._views import card_lines

app = typer.Typer(
    help="Build and handle locked bundles (NAME-VERSION.tar.gz).", no_args_is_help=True
)

_KEY_HELP = "Ed25519 public key (PEM file) to check MANIFEST.sig; default: $SHIPYARD_PUBLIC_KEY."


def _load_object(spec: str, what: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(
            f"{what} must be MODULE:NAME (e.g. my_project.pipelines:credit_risk), not {spec!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module '{module_name}': {exc}") from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise UsageError(f"module '{module_name}' has no '{attribute}'") from None
    return value


@app.command("build")
def build(
    target: str = typer.Argument(
        ..., metavar="MODULE:PIPELINE", help="A Pipeline, or a function returning one."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder to write NAME-VERSION.tar.gz into."
    ),
    sign_key: Path | None = typer.Option(
        None, "--sign-key", help="Ed25519 private key (PEM) that signs the bundle."
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Training data: a .json dataset, .csv, .parquet, .jsonl file, or MODULE:NAME.",
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (ONNX where parity holds on the reference), onnx or native."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Export a pipeline as a locked bundle."""
    from ..pipeline import Pipeline

    pipeline = _load_object(target, "MODULE:PIPELINE")
    if callable(pipeline) and not isinstance(pipeline, Pipeline):
        pipeline = pipeline()
    if not isinstance(pipeline, Pipeline):
        raise UsageError(f"'{target}' is a {type(pipeline).__name__}, not a shipyard.Pipeline")
    data: Any = None
    if reference is not None:
        if Path(reference).exists() or ":" not in reference:
            table = pipeline.inputs[0].name if len(pipeline.inputs) == 1 else None
            data = read_dataset(reference, table)
        else:
            data = _load_object(reference, "--reference")
            data = data() if callable(data) else data
    path = pipeline.export(output, reference=data, sign_key=sign_key, backend=backend)
    artifact = Artifact(path)
    summary = {
        "bundle": str(path),
        "name": pipeline.name,
        "version": pipeline.version,
        "bytes": path.stat().st_size,
        "files": len(artifact.files),
        "signed": "MANIFEST.sig" in artifact.files,
    }
    if as_json:
        print_json(summary)
    else:
        signed = "signed" if summary["signed"] else "unsigned"
        console.print(
            f"built {path} ({summary['bytes']:,} bytes, {summary['files']} files, {signed})"
        )


def _pipeline(bundle: Path, public_key: Path | None = None) -> Artifact:
    """The bundle, opened; UsageError for an app bundle (it holds no pipeline)."""
    artifact = Artifact(bundle, public_key=public_key)
    meta = artifact.metadata
    if meta.get("kind", "model") != "model":
        raise UsageError(
            f"{bundle} is an app bundle ({meta.get('name')} {meta.get('version')}): it holds "
            "no pipeline; 'artifact inspect' and 'artifact verify' check it, 'shipyard app' "
            "registers it"
        )
    return artifact


def _check(artifact: Artifact, public_key: Path | None) -> dict[str, Any]:
    try:
        check = artifact.verify(public_key)
        check["ok"] = True
    except Exception as exc:  # inspect reports a failed check rather than stopping
        check = {"ok": False, "error": str(exc)}
    return check


def _describe_app(artifact: Artifact, public_key: Path | None) -> dict[str, Any]:
    return {
        "bundle": str(artifact.path),
        "package": artifact.package,
        **artifact.metadata,
        "verification": _check(artifact, public_key),
        "files": {path: len(data) for path, data in sorted(artifact.files.items())},
    }


def _describe(artifact: Artifact, public_key: Path | None) -> dict[str, Any]:
    meta = artifact.metadata
    check = _check(artifact, public_key)
    try:
        genai = artifact.genai
    except ShipyardError:  # a file is missing: the failed check above says which
        genai = {}
    return {
        "bundle": str(artifact.path),
        "package": artifact.package,
        "name": meta["name"],
        "version": meta["version"],
        "format_version": meta["format_version"],
        "description": meta.get("description", ""),
        "target": meta.get("target"),
        "created_at": meta.get("created_at"),
        "created_by": meta.get("created_by"),
        "groups": meta.get("groups", []),
        "permissible_purpose": meta.get("permissible_purpose", []),
        "model_card": meta.get("model_card") or {},
        "tags": meta.get("tags", {}),
        "outputs": meta["outputs"],
        "nodes": [
            {
                "name": n["name"],
                "kind": n["kind"],
                "dtype": n["dtype"],
                "flavor": n.get("flavor"),
                "backend": meta.get("backend", {}).get(n["name"]),
                "inputs": n["inputs"],
                "pickle": bool(n.get("pickle")),
                "converted_from": n.get("converted_from"),
                "parity": n.get("parity"),
                "onnx_rejected": n.get("onnx_rejected"),
            }
            for n in meta["nodes"]
        ],
        "inputs": artifact.input_info["tables"],
        "genai": genai,
        "versions": artifact.versions,
        "unsafe_pickle": meta.get("unsafe_pickle", []),
        "verification": check,
        "files": {path: len(data) for path, data in sorted(artifact.files.items())},
    }


@app.command("inspect")
def inspect(
    bundle: Path = typer.Argument(..., help="NAME-VERSION.tar.gz"),
    public_key: Path | None = typer.Option(None, "--public-key", help=_KEY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show what a bundle holds: metadata, inputs, nodes, library versions, check result."""
    artifact = Artifact(bundle)
    if artifact.metadata.get("kind", "model") == "app":
        app_info = _describe_app(artifact, public_key)
        if as_json:
            print_json(app_info)
            return
        build = app_info.get("build") or {}
        check = app_info["verification"]
        console.print(
            f"[bold]{app_info['name']} {app_info['version']}[/]  (app bundle, "
            f"{app_info['package']})\nentry {app_info.get('entry')}; models: "
            f"{', '.join(app_info.get('models') or []) or 'none'}; created "
            f"{app_info.get('created_at')}\ngit commit {build.get('git_commit')}, branch "
            f"{build.get('git_branch')}, dirty {build.get('git_dirty')}\n"
            + (
                f"verified: {check['files']} files match MANIFEST.json"
                if check["ok"]
                else f"[red]check failed: {check['error']}[/]"
            ),
            soft_wrap=True,
        )
        return
    info = _describe(artifact, public_key)
    if as_json:
        print_json(info)
        return
    console.print(
        f"[bold]{info['name']} {info['version']}[/]  "
        f"({info['package']}, format {info['format_version']})"
    )
    if info["description"]:
        console.print(info["description"])
    console.print(f"created {info['created_at']} by {info['created_by']}; target: {info['target']}")
    if info["groups"] or info["permissible_purpose"]:
        console.print(
            f"groups: {', '.join(info['groups'])}; "
            f"purpose: {', '.join(info['permissible_purpose'])}"
        )
    if info["model_card"]:
        console.print("\n".join(["model card:", *card_lines(info["model_card"])]), markup=False)
    nodes = RichTable(title="nodes (run order)")
    for column in ("node", "kind", "type", "flavor / backend", "reads"):
        nodes.add_column(column)
    for node in info["nodes"]:
        flavor = f"{node['flavor']} / {node['backend']}" if node["flavor"] else ""
        if node["pickle"]:
            flavor += " [red](pickle)[/]"
        reads = ", ".join(node["inputs"][:4]) + (
            f" … (+{len(node['inputs']) - 4})" if len(node["inputs"]) > 4 else ""
        )
        star = " *" if node["name"] in info["outputs"] else ""
        nodes.add_row(node["name"] + star, node["kind"], node["dtype"], flavor, reads)
    console.print(nodes)
    console.print("* = output")
    for node in info["nodes"]:
        if node["parity"]:
            p = node["parity"]
            relative = f" + rtol {p['rtol']:g} x |value|" if p.get("rtol") else ""
            console.print(
                f"{node['name']}: ONNX (from {node['converted_from']}), max |diff| "
                f"{p['max_abs_diff']:.2g} within tolerance {p['tolerance']:g}{relative} on "
                f"{p['rows']:,} reference rows; labels identical"
            )
        elif node["onnx_rejected"]:
            console.print(f"{node['name']}: native, ONNX not used: {node['onnx_rejected']}")
    _print_genai(info["genai"])
    for table in info["inputs"]:
        cols = RichTable(title=f"input table '{table['name']}' ({len(table['columns'])} columns)")
        for column in ("column", "type", "nullable", "range / categories"):
            cols.add_column(column)
        for col in table["columns"]:
            if col.get("categories") is not None:
                allowed = ", ".join(map(str, col["categories"]))
            elif col.get("min") is not None and col.get("max") is not None:
                allowed = f"[{col['min']}, {col['max']}]"
            elif col.get("min") is not None:
                allowed = f">= {col['min']}"
            elif col.get("max") is not None:
                allowed = f"<= {col['max']}"
            else:
                allowed = ""
            cols.add_row(col["name"], col["type"], "yes" if col["nullable"] else "no", allowed)
        console.print(cols)
    for entry, versions in info["versions"].items():
        libs = ", ".join(f"{k} {v}" for k, v in versions["packages"].items())
        console.print(f"{entry}: python {versions['python']}; {libs}")
    check = info["verification"]
    if check["ok"]:
        sig = (
            "signature checked"
            if check["signature_checked"]
            else ("signed, no key given" if check["signed"] else "unsigned")
        )
        console.print(f"[green]verified[/]: {check['files']} files match MANIFEST.json ({sig})")
    else:
        console.print(f"[red]NOT VERIFIED[/]: {check['error']}")
    total = sum(info["files"].values())
    console.print(f"{len(info['files'])} files, {total:,} bytes unpacked")


def _print_genai(genai: dict[str, dict[str, Any]]) -> None:
    """Each GenAI node's locked parts: templates in full, settings, knowledge files."""
    for name, node in genai.items():
        kind = node["kind"]
        if kind == "prompt":
            variables = ", ".join(f"{v} <- {ref}" for v, ref in node["variables"].items())
            console.print(f"[bold]prompt {name}[/] ({node['form']}; variables: {variables})")
            for path, text in node["templates"].items():
                console.print(f"[dim]--- {path}[/]", highlight=False)
                console.print(text, markup=False, highlight=False)
        elif kind == "llm":
            settings = ", ".join(
                f"{k}={json.dumps(v)}" for k, v in node["settings"].items() if v is not None
            )
            console.print(f"[bold]llm {name}[/]: {settings}", markup=True, highlight=False)
            console.print(
                "  endpoint and key: not in the bundle; set at run time by the host "
                "(SHIPYARD_LLM_BASE_URL, SHIPYARD_LLM_API_KEY) or the environment config "
                "(llm.base_url)"
            )
        elif kind == "knowledge":
            console.print(
                f"[bold]knowledge {name}[/]: {node['chunks']} chunks of <= {node['chunk_words']} "
                f"words, {node['index']} index"
            )
            for path, document in node["documents"].items():
                console.print(
                    f"  {path}  {document['bytes']:,} bytes  sha256 {document['sha256']}",
                    soft_wrap=True,
                )
        elif kind == "retrieve":
            console.print(
                f"[bold]retrieve {name}[/]: top {node['top_k']} passages of '{node['knowledge']}'"
            )
        elif kind == "parse":
            console.print(
                f"[bold]parse {name}[/]: schema {json.dumps(node['schema'])}; "
                f"fallback {json.dumps(node['fallback'])}",
                highlight=False,
            )


@app.command("verify")
def verify(
    bundle: Path = typer.Argument(..., help="NAME-VERSION.tar.gz"),
    public_key: Path | None = typer.Option(None, "--public-key", help=_KEY_HELP),
    allow_unverified_signature: bool = typer.Option(
        False,
        "--allow-unverified-signature",
        help="Exit 0 for a signed bundle even when no key was given to check its signature.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Check each file against MANIFEST.json and the signature; exit 1 naming the first bad file.

    A signed bundle whose signature could not be checked (no --public-key, no
    SHIPYARD_PUBLIC_KEY) exits 1 unless --allow-unverified-signature is given: a script
    reading the exit code must not take "not checked" for "valid".
    """
    artifact = Artifact(bundle)
    report = artifact.verify(public_key)
    pickles = list(artifact.metadata.get("unsafe_pickle") or [])
    if report["signed"] and not report["signature_checked"]:
        report.update(_registry_signer(artifact))
    unchecked = bool(report["signed"]) and not report["signature_checked"]
    ok = not unchecked or allow_unverified_signature
    if as_json:
        print_json({"bundle": str(bundle), "ok": ok, "pickle_nodes": pickles, **report})
    else:
        if report.get("signer_key_id"):
            how = f"signature valid (trusted key {report['signer_key_id']} of the registry)"
        elif report["signature_checked"]:
            how = "signature valid"
        elif report["signed"]:
            how = "signed, but no public key given: signature NOT checked"
        else:
            how = "unsigned"
        mark = "[green]OK[/]" if ok else "[red]NOT VERIFIED[/]"
        console.print(
            f"{mark} {bundle}: {report['files']} files match MANIFEST.json; {how}",
            soft_wrap=True,
        )
        if pickles:
            console.print(
                f"[yellow]warning[/]: node(s) {', '.join(pickles)} are stored as a plain pickle: "
                "loading them runs code; serve and batch refuse them unless allow_pickle is set"
            )
    if not ok:
        raise UsageError(
            "the signature was not checked: give --public-key (or SHIPYARD_PUBLIC_KEY), "
            "or pass --allow-unverified-signature to accept the file hashes alone"
        )


def _registry_signer(artifact: Artifact) -> dict[str, Any]:
    """With a registry configured ($SHIPYARD_URL or $SHIPYARD_DATABASE_URL), check the
    signature against its trusted keys: ``{"signature_checked": True, "signer_key_id": id}``
    when one of them signed the bundle, else nothing (the bundle's trust is then unknown)."""
    if not (os.environ.get("SHIPYARD_URL") or os.environ.get("SHIPYARD_DATABASE_URL")):
        return {}
    from ..registry import key_ring
    from ..runtime import signature_key
    from ._backend import open_backend
    from ._output import plain

    with open_backend() as backend:
        keys = plain(backend.list_trusted_keys())
    signer = signature_key(artifact.files, key_ring(keys))
    return {"signature_checked": True, "signer_key_id": signer} if signer else {}


@app.command("lineage")
def lineage(
    bundle: Path = typer.Argument(..., help="NAME-VERSION.tar.gz"),
    fmt: str = typer.Option("json", "--format", help="json, dot (Graphviz) or mermaid."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Print the graph: input columns -> features -> models -> rules."""
    graph = _pipeline(bundle).lineage
    fmt = "json" if as_json else fmt
    if fmt == "json":
        print_json(graph)
    elif fmt == "dot":
        lines = ["digraph lineage {", "  rankdir=LR;"]
        shapes = {"input": "note", "feature": "box", "model": "box3d", "rule": "diamond"}
        for node in graph["nodes"]:
            shape = shapes.get(node["kind"], "box")
            lines.append(f'  "{node["id"]}" [shape={shape}, tooltip="{node["dtype"]}"];')
        lines += [f'  "{a}" -> "{b}";' for a, b in graph["edges"]]
        sys.stdout.write("\n".join(lines + ["}"]) + "\n")
    elif fmt == "mermaid":
        ids = {node["id"]: f"n{i}" for i, node in enumerate(graph["nodes"])}
        lines = ["graph LR"]
        for node in graph["nodes"]:
            lines.append(f'  {ids[node["id"]]}["{node["id"]} ({node["kind"]})"]')
        lines += [f"  {ids[a]} --> {ids[b]}" for a, b in graph["edges"]]
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        raise UsageError(f"unknown --format {fmt!r}: use json, dot or mermaid")


@app.command("run")
def run(
    bundle: Path = typer.Argument(..., help="NAME-VERSION.tar.gz"),
    input_file: Path = typer.Option(
        ..., "--input", "-i", help="A .json dataset, or a .csv/.parquet/.jsonl table."
    ),
    outputs: str | None = typer.Option(
        None, "--outputs", help="Comma-separated node names (any node)."
    ),
    public_key: Path | None = typer.Option(None, "--public-key", help=_KEY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Run a bundle on a file, whole or up to the named nodes (verifies it first)."""
    artifact = _pipeline(bundle, public_key)
    tables = artifact.input_info["tables"]
    data = read_dataset(input_file, tables[0]["name"] if len(tables) == 1 else None)
    wanted = [o.strip() for o in outputs.split(",") if o.strip()] if outputs else None
    result = artifact.run(data, wanted)
    if as_json:
        print_json(result)
        return
    grid = RichTable()
    grid.add_column("row", justify="right")
    for name, column in result.items():
        grid.add_column(f"{name} ({column['type']})")
    rows = len(next(iter(result.values()))["values"]) if result else 0
    for i in range(rows):
        grid.add_row(str(i), *(_cell(column["values"][i]) for column in result.values()))
    console.print(grid)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)


@app.command("extract")
def extract(
    bundle: Path = typer.Argument(..., help="NAME-VERSION.tar.gz"),
    node: str | None = typer.Argument(
        None, help="A node (its objects/NODE/ files); omit for the whole bundle."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Destination folder."),
    public_key: Path | None = typer.Option(None, "--public-key", help=_KEY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write one node's files (e.g. a model file) or the whole bundle, after verifying it."""
    opened = _pipeline(bundle, public_key) if node is not None else Artifact(bundle, public_key)
    written = opened.extract(node, output)
    if as_json:
        print_json({"written": [str(p) for p in written]})
        return
    for path in written:
        console.print(str(path))
