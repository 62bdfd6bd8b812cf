"""``shipyard monitor``: drift, feedback, compare, report and check over captured requests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ..errors import UsageError
from ._backend import ENV, JSON, PROJECT, open_backend
from ._output import emit, print_json, table

app = typer.Typer(
    help="Monitoring: drift against each version's reference, performance from late labels, "
    "comparisons, an HTML report and alert rules.",
    no_args_is_help=True,
)

MODEL = typer.Option(None, "--model", "-m", help="Only this model (default: every model).")
NEEDS_MODEL = typer.Option(..., "--model", "-m", help="The model.")
SINCE = typer.Option(None, "--since", help="From this time: ISO 8601, or a duration back (24h).")
UNTIL = typer.Option(None, "--until", help="Up to this time (ISO 8601 or a duration back).")
WINDOW = typer.Option(None, "--window", "-w", help="Cut into windows of this length (1h, 1d).")
CAPTURES = typer.Option(
    None, "--captures", help="Read captures here (default: the environment's capture folder)."
)
LABELS = typer.Option(None, "--labels", help="Late labels: a CSV, Parquet or JSON Lines file.")
ID_COLUMN = typer.Option("id", "--id-column", help="The labels' id column.")
LABEL_COLUMN = typer.Option("label", "--label-column", help="The labels' ground-truth column.")
JOIN_ON = typer.Option(
    "request",
    "--join-on",
    help="What ids name: 'request' (a request id, or REQUEST#ROW) or a captured TABLE.COLUMN.",
)


def _times(since: str | None, until: str | None, window: str | None) -> dict[str, Any]:
    from ..monitoring import parse_duration, parse_time

    return {
        "since": parse_time(since, "--since") if since else None,
        "until": parse_time(until, "--until") if until else None,
        "window": parse_duration(window) if window else None,
    }


def _folder(backend: Any, project: str, env: str, captures: Path | None) -> Path:
    from ..monitoring import capture_folder
    from ..registry import to_json

    if captures is not None:
        return captures
    return capture_folder(project, env, to_json(backend.status(project, env))["config"])


def _feedback(
    backend: Any,
    project: str,
    env: str,
    model: str,
    labels: Path,
    options: dict[str, Any],
    captures: Path | None,
    times: dict[str, Any],
) -> Any:
    from ..monitoring import captured_versions, evaluate, windows

    folder = _folder(backend, project, env, captures)
    parts = [
        w
        for _, version in captured_versions(folder, model)
        for w in windows(folder, model, version, since=times["since"], until=times["until"])
    ]
    return evaluate(parts, labels, model=model, window=times["window"], **options)


@app.command("drift")
def drift(
    project: str = PROJECT,
    env: str = ENV,
    model: str | None = MODEL,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    window: str | None = WINDOW,
    captures: Path | None = CAPTURES,
    min_rows: int = typer.Option(30, "--min-rows", help="Skip a column with fewer values."),
    no_record: bool = typer.Option(False, "--no-record", help="Do not store the results."),
    as_json: bool = JSON,
) -> None:
    """Test each served version's captured inputs and outputs against its reference profile."""
    from ..monitoring import run_drift

    with open_backend() as backend:
        run = run_drift(
            backend,
            project,
            env,
            model=model,
            folder=captures,
            min_rows=min_rows,
            record=not no_record,
            **_times(since, until, window),
        )
    emit(run.to_json(), as_json, _drift_table)


def _drift_table(data: dict[str, Any]) -> Any:
    rows = []
    for version in data["versions"]:
        for r in version["results"]:
            judged = "p < " if r["test"] in ("ks", "chi2", "z") else "> "
            rows.append(
                {
                    "model": version["model"],
                    "version": version["version"],
                    "window": f"{r['window_start'][:16]} - {r['window_end'][11:16]}",
                    "column": r["column"],
                    "test": r["test"],
                    "score": f"{r['score']:.4g}",
                    "p-value": "-" if r["p_value"] is None else f"{r['p_value']:.3g}",
                    "threshold": f"{r['detail']['threshold']} {judged}{r['threshold']:g} "
                    f"({r['threshold_level']})",
                    "drift": "DRIFT" if r["drifted"] else "ok",
                }
            )
    from rich.console import Group

    shown: list[Any] = [
        table(
            rows,
            [
                "model",
                "version",
                "window",
                "column",
                "test",
                "score",
                "p-value",
                "threshold",
                "drift",
            ],
            title=f"drift in {data['project']}/{data['environment']}",
        )
    ]
    for version in data["versions"]:
        for column, why in sorted(version["skipped"].items()):
            shown.append(f"skipped {version['model']} {version['version']} {column}: {why}")
    shown.append(f"{data['recorded']} results recorded in the registry")
    return Group(*shown)


@app.command("feedback")
def feedback(
    labels: Path = typer.Argument(..., help="Late labels: a CSV, Parquet or JSON Lines file."),
    project: str = PROJECT,
    env: str = ENV,
    model: str = NEEDS_MODEL,
    id_column: str = ID_COLUMN,
    label_column: str = LABEL_COLUMN,
    join_on: str = JOIN_ON,
    prediction: str | None = typer.Option(None, "--prediction", help="The output to judge."),
    task: str = typer.Option("auto", "--task", help="auto, binary, label or regression."),
    positive: str | None = typer.Option(None, "--positive", help="The positive class."),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    window: str | None = WINDOW,
    captures: Path | None = CAPTURES,
    as_json: bool = JSON,
) -> None:
    """Join late labels to captured predictions; performance per version (and window)."""
    options = {
        "id_column": id_column,
        "label_column": label_column,
        "join_on": join_on,
        "prediction": prediction,
        "task": task,
        "positive": positive,
    }
    with open_backend() as backend:
        report = _feedback(
            backend, project, env, model, labels, options, captures, _times(since, until, window)
        )
    emit(report.to_json(), as_json, _feedback_table)


def _feedback_table(data: dict[str, Any]) -> Any:
    from rich.console import Group

    figures = ("rows", "accuracy", "roc_auc", "log_loss", "brier", "mae", "rmse")
    shown = [n for n in figures if any(v.get(n) is not None for v in data["versions"])]
    rows = [
        {"version": v["version"], **{n: _number(v.get(n)) for n in shown}} for v in data["versions"]
    ]
    windows = [
        {
            "version": w["version"],
            "window": w["window_start"][:16],
            **{n: _number(w.get(n)) for n in shown},
        }
        for w in data["windows"]
    ]
    unmatched = (
        f"{data['unmatched']} labels matched no captured prediction"
        + (f" (first: {', '.join(data['unmatched_ids'])})" if data["unmatched"] else "")
        + f"; {data['duplicates']} ids given twice; {data['unlabelled']} captured rows unlabelled"
    )
    parts: list[Any] = [
        table(
            rows,
            ["version", *shown],
            title=f"{data['model']}: {data['task']} on {data['prediction']}",
        ),
        f"{data['labels']} labels, {data['matched']} matched; {unmatched}",
    ]
    if windows:
        parts.append(table(windows, ["version", "window", *shown], title="per window"))
    return Group(*parts)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _read_metrics(source: str) -> str:
    if source.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(source, timeout=10.0)
        except httpx.HTTPError as exc:
            raise UsageError(f"--metrics {source}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise UsageError(f"--metrics {source} answered {response.status_code}")
        return response.text
    return Path(source).read_text()


@app.command("compare")
def compare(
    project: str = PROJECT,
    env: str = ENV,
    model: str = NEEDS_MODEL,
    primary: str | None = typer.Option(None, "--primary", help="Compare the others with this."),
    metrics: str | None = typer.Option(
        None, "--metrics", help="A serving /metrics URL or file: requests and error rates."
    ),
    labels: Path | None = LABELS,
    id_column: str = ID_COLUMN,
    label_column: str = LABEL_COLUMN,
    join_on: str = JOIN_ON,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    captures: Path | None = CAPTURES,
    as_json: bool = JSON,
) -> None:
    """Set an A/B split's or a shadow's versions side by side, with significance tests."""
    from ..monitoring import compare as compare_versions
    from ..registry import to_json

    times = _times(since, until, None)
    with open_backend() as backend:
        folder = _folder(backend, project, env, captures)
        weights: dict[str, float] = {}
        for component in to_json(backend.status(project, env))["components"]:
            if component["name"] == model:
                traffic = component["settings"].get("traffic", {}).get("value") or {}
                weights = traffic.get("weights") or {}
    result = compare_versions(
        folder,
        model,
        primary=primary,
        weights=weights,
        since=times["since"],
        until=times["until"],
        metrics_text=_read_metrics(metrics) if metrics else None,
        labels=None
        if labels is None
        else {
            "labels_path": labels,
            "id_column": id_column,
            "label_column": label_column,
            "join_on": join_on,
        },
    )
    emit(result.to_json(), as_json, _compare_table)


def _p(test: dict[str, Any] | None) -> str:
    if not test or test.get("p_value") is None:
        return ""
    p = test["p_value"]
    return " (p<0.001)" if p < 0.001 else f" (p={p:.3f})"


def _compare_table(data: dict[str, Any]) -> Any:
    from rich.table import Table as RichTable

    versions = data["versions"]
    grid = RichTable(
        title=f"{data['model']}: versions against {data['primary']}", title_justify="left"
    )
    grid.add_column("")
    for v in versions:
        share = f" {v['weight']:g}%" if v["weight"] is not None else ""
        grid.add_column(f"{v['version']} ({v['role']}{share})")

    def row(name: str, cells: list[str]) -> None:
        grid.add_row(name, *cells)

    row("requests captured", [str(v["requests"]) for v in versions])
    row("rows captured", [str(v["rows"]) for v in versions])
    row("requests answered", [_number(v["answered"]) for v in versions])
    row(
        "error rate",
        [
            "-"
            if v["error_rate"] is None
            else f"{v['error_rate']:.2%}" + _p(v["vs_primary"].get("error_rate"))
            for v in versions
        ],
    )
    for q in ("p50", "p95", "p99"):
        row(
            f"latency {q} ms",
            [
                _number(v["latency_ms"].get(q))
                + (_p(v["vs_primary"].get("latency")) if q == "p50" else "")
                for v in versions
            ],
        )
    outputs = [
        k
        for k in versions[-1]["vs_primary"]
        if k not in ("latency", "agreement", "error_rate", "performance")
    ]
    for name in outputs:
        row(
            f"{name}: distance",
            [
                "-"
                if name not in v["vs_primary"] or v["vs_primary"][name].get("test") is None
                else f"{v['vs_primary'][name]['test']} {v['vs_primary'][name]['distance']:.3g}"
                + _p(v["vs_primary"][name])
                for v in versions
            ],
        )
    agreements = {k for v in versions for k in v["vs_primary"].get("agreement", {}) if k != "rows"}
    for name in sorted(agreements):
        row(
            f"{name}: agreement",
            [
                f"{v['vs_primary']['agreement'][name]['agreement']:.1%}"
                if name in v["vs_primary"].get("agreement", {})
                else "-"
                for v in versions
            ],
        )
    if any(v["performance"] for v in versions):
        for metric in ("accuracy", "roc_auc", "mae", "rmse"):
            if any((v["performance"] or {}).get(metric) is not None for v in versions):
                row(
                    metric,
                    [
                        _number((v["performance"] or {}).get(metric))
                        + (_p(v["vs_primary"].get("performance")) if metric == "accuracy" else "")
                        for v in versions
                    ],
                )
    return grid


@app.command("report")
def report(
    output: Path = typer.Option(..., "--output", "-o", help="Write the HTML report here."),
    project: str = PROJECT,
    env: str = ENV,
    model: str | None = MODEL,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    window: str | None = WINDOW,
    captures: Path | None = CAPTURES,
    labels: Path | None = LABELS,
    id_column: str = ID_COLUMN,
    label_column: str = LABEL_COLUMN,
    join_on: str = JOIN_ON,
    no_record: bool = typer.Option(False, "--no-record", help="Do not store the results."),
    as_json: bool = JSON,
) -> None:
    """Write one self-contained HTML report: drift, distributions, history, performance."""
    from ..monitoring import build_report

    times = _times(since, until, window)
    with open_backend() as backend:
        found = None
        if labels is not None:
            if model is None:
                raise UsageError("--labels needs --model: labels belong to one model")
            options = {"id_column": id_column, "label_column": label_column, "join_on": join_on}
            found = _feedback(backend, project, env, model, labels, options, captures, times)
        html, run = build_report(
            backend,
            project,
            env,
            model=model,
            folder=captures,
            feedback=found,
            record=not no_record,
            **times,
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html)
    emit(
        {"report": str(output), "drifted": run.drifted, "recorded": run.recorded},
        as_json,
        lambda d: f"wrote {d['report']}" + (" (drift found)" if d["drifted"] else ""),
    )


@app.command("check")
def check(
    project: str = PROJECT,
    env: str = ENV,
    model: str | None = MODEL,
    rules: Path | None = typer.Option(
        None,
        "--rules",
        help="Alert rules (YAML or JSON, as the environment config's "
        "'monitoring'); default: the environment config's.",
    ),
    webhook: str | None = typer.Option(None, "--webhook", help="POST fired alerts here."),
    labels: Path | None = LABELS,
    id_column: str = ID_COLUMN,
    label_column: str = LABEL_COLUMN,
    join_on: str = JOIN_ON,
    captures: Path | None = CAPTURES,
    as_json: bool = JSON,
) -> None:
    """Evaluate alert rules on the stored drift and on late labels; exit 1 when any fires."""
    import yaml

    from ..monitoring import check as check_rules
    from ..monitoring import check_webhook, read_rules
    from ..registry import to_json

    with open_backend() as backend:
        if rules is not None:
            loaded = yaml.safe_load(rules.read_text()) or {}
            config = loaded if "monitoring" in loaded else {"monitoring": loaded}
        else:
            config = to_json(backend.get_environment_config(project, env))
        found, configured = read_rules(config)
        target = check_webhook(webhook) if webhook else configured
        feedback = None
        if labels is not None:
            if model is None:
                raise UsageError("--labels needs --model: labels belong to one model")
            options = {"id_column": id_column, "label_column": label_column, "join_on": join_on}
            feedback = _feedback(
                backend, project, env, model, labels, options, captures, _times(None, None, None)
            )
        result = check_rules(
            backend, project, env, found, webhook=target, feedback=feedback, model=model
        )
    data = result.to_json()
    if as_json:
        print_json(data)
    else:
        emit(data, False, _check_lines)
    if result.alerts:
        sys.exit(1)


def _check_lines(data: dict[str, Any]) -> str:
    lines = [f"{data['fired']} of {data['rules']} rules fired"]
    lines += [f"ALERT {a['rule']}: {a['message']}" for a in data["alerts"]]
    lines += [f"skipped {s}" for s in data["skipped"]]
    if data["webhook"]:
        lines.append(f"posted to {data['webhook']}")
    return "\n".join(lines)
