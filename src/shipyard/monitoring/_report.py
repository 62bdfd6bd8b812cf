"""``monitor report``: one self-contained HTML file (inline CSS and SVG, no script).

It opens with no network request: nothing in it names a URL to load. Sections: the
latest drift per column (each result with the threshold it was judged against and what
was skipped), reference against current distributions, drift over the stored windows,
and performance over time when labels were given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from ..registry import RegistryAPI, to_json
from . import _captures, _stats, _svg
from ._drift import DriftRun, VersionDrift, run_drift
from ._feedback import Feedback
from ._reference import ColumnReference

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
h3{font-size:1rem}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.2rem .5rem;font-size:.85rem;text-align:left}
th{background:#f4f4f4}.drifted{background:#fde2e1}.ok{background:#e6f4ea}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.muted{color:#777;font-size:.85rem}
"""
TEST_OF_KIND = {"numeric": "psi", "categorical": "js"}  # what the history charts plot


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str], classes: Sequence[str] = ()) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{classes[i] if i < len(classes) else ""}">'
        + "".join(f"<td>{_cell(v)}</td>" for v in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _latest(version: VersionDrift) -> str:
    newest: dict[tuple[str, str], Any] = {}
    for finding in version.findings:
        newest[(finding.column, finding.test)] = finding
    rows, classes = [], []
    for (column, test), f in sorted(newest.items()):
        judged = f"{'p < ' if f.threshold_name.endswith('pvalue') else '> '}{f.threshold:g}"
        rows.append(
            [
                column,
                test,
                f.score,
                f.p_value,
                f"drift_thresholds.{f.threshold_name} {judged} ({f.threshold_level})",
                f.rows,
                "DRIFT" if f.drifted else "ok",
            ]
        )
        classes.append("drifted" if f.drifted else "ok")
    table = _table(
        rows, ["column", "test", "score", "p-value", "judged against", "rows", ""], classes
    )
    skipped = "".join(
        f"<li>{escape(column)}: {escape(why)}</li>"
        for column, why in sorted(version.skipped.items())
    )
    return table + (
        f'<p class="muted">Skipped:</p><ul class="muted">{skipped}</ul>' if skipped else ""
    )


def distribution_chart(reference: ColumnReference, window: _captures.Window) -> str | None:
    """Reference against current shares of one column, on the profile's own bins."""
    name = reference.column
    captured = window.live().column(name if name.startswith("output.") else f"input.{name}")
    if captured is None:
        return None
    current = _captures.values(captured, reference.kind)
    if len(current) == 0:
        return None
    if reference.kind == "numeric" and reference.histogram is not None:
        edges, counts = reference.histogram
        now = _stats.bin_counts(current, edges[1:-1], right_closed=False)
        groups = [f"{edges[i]:.3g}" for i in range(len(counts))]
        ref_total, now_total = max(sum(counts), 1), max(int(now.sum()), 1)
        series = {
            "reference": [c / ref_total for c in counts],
            "current": [c / now_total for c in now.tolist()],
        }
    else:
        names, ref, now, _ = _stats.category_counts(
            reference.categories, reference.other, current.tolist()
        )
        groups = names
        series = {
            "reference": (ref / max(ref.sum(), 1)).tolist(),
            "current": (now / max(now.sum(), 1)).tolist(),
        }
    return _svg.bars(f"{name}: share of rows, reference and current", groups, series)


def history_chart(column: str, test: str, results: Sequence[Mapping[str, Any]]) -> str | None:
    """One test's score over the stored windows of one column, with its threshold."""
    found = [r for r in results if r["column"] == column and r["test"] == test]
    if not found:
        return None
    labels = [str(r["window_end"])[5:16].replace("T", " ") for r in found]
    return _svg.lines(
        f"{column}: {test} over windows",
        labels,
        {test: [float(r["score"]) for r in found]},
        float(found[-1]["threshold"]),
    )


def performance_section(feedback: Feedback) -> str:
    parts = [
        f"<p>{feedback.labels} labels: {feedback.matched} matched a captured prediction, "
        f"{feedback.unmatched} did not"
        + (f" (first: {escape(', '.join(feedback.unmatched_ids))})" if feedback.unmatched else "")
        + f", {feedback.duplicates} given twice; {feedback.unlabelled} captured rows unlabelled. "
        f"Task: {escape(feedback.task)}, prediction: {escape(feedback.prediction)}.</p>"
    ]
    names = [k for k in ("accuracy", "roc_auc", "log_loss", "brier", "mae", "rmse")]
    shown = [n for n in names if any(v.get(n) is not None for v in feedback.versions)]
    parts.append(
        _table(
            [[v["version"], v["rows"], *(v.get(n) for n in shown)] for v in feedback.versions],
            ["version", "rows", *shown],
        )
    )
    if feedback.windows:
        labels = sorted({w["window_start"][5:16].replace("T", " ") for w in feedback.windows})
        charts = []
        for metric in shown:
            series: dict[str, list[float | None]] = {}
            for w in feedback.windows:
                line = series.setdefault(w["version"], [None] * len(labels))
                line[labels.index(w["window_start"][5:16].replace("T", " "))] = w.get(metric)
            charts.append(_svg.lines(f"{metric} over windows", labels, series))
        parts.append('<div class="charts">' + "".join(charts) + "</div>")
    for v in feedback.versions:
        if v.get("calibration"):
            rows = [[b["bin"], b["rows"], b["predicted"], b["observed"]] for b in v["calibration"]]
            parts.append(f"<h3>Calibration of {escape(v['version'])}</h3>")
            parts.append(_table(rows, ["bin", "rows", "mean predicted", "observed rate"]))
    return "".join(parts)


def render(
    run: DriftRun,
    history: Sequence[Mapping[str, Any]],
    current: Mapping[tuple[str, str], _captures.Window],
    feedback: Feedback | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The report as HTML text (see the module's docstring)."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Shipyard monitoring: {escape(run.project)}/{escape(run.environment)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Monitoring: {escape(run.project)} / {escape(run.environment)}</h1>",
        f'<p class="muted">Generated {when} from the captured requests in '
        f"{escape(run.folder)}.</p>",
    ]
    for version in run.versions:
        title = f"{version.model} {version.version}"
        parts.append(f"<h2>{escape(title)}</h2>")
        drifted = version.drifted_columns
        parts.append(
            f"<p><strong>{'Drift in ' + escape(', '.join(drifted)) if drifted else 'No drift'}"
            f"</strong> (reference profile format {version.reference_format or '-'}).</p>"
        )
        parts.append(_latest(version))
        window = current.get((version.model, version.version))
        if version.reference is not None and window is not None:
            charts = [distribution_chart(c, window) for c in version.reference.columns.values()]
            parts.append("<h3>Reference and current</h3>")
            parts.append('<div class="charts">' + "".join(c for c in charts if c) + "</div>")
            mine = [
                r for r in history if (r["model"], r["version"]) == (version.model, version.version)
            ]
            lines = [
                history_chart(name, TEST_OF_KIND[c.kind], mine)
                for name, c in version.reference.columns.items()
            ]
            if any(lines):
                parts.append("<h3>Drift over windows</h3>")
                parts.append('<div class="charts">' + "".join(c for c in lines if c) + "</div>")
    if feedback is not None:
        parts.append(f"<h2>Performance of {escape(feedback.model)} from labels</h2>")
        parts.append(performance_section(feedback))
    parts.append("</body></html>")
    return "\n".join(parts)


def build(
    registry: RegistryAPI,
    project: str,
    env: str,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window: timedelta | None = None,
    folder: Path | None = None,
    feedback: Feedback | None = None,
    record: bool = True,
) -> tuple[str, DriftRun]:
    """Run drift (recording it unless ``record`` is False) and render the report.

    The history charts read every stored window of the environment's drift results.
    """
    run = run_drift(
        registry,
        project,
        env,
        model=model,
        since=since,
        until=until,
        window=window,
        folder=folder,
        record=record,
    )
    history = to_json(registry.drift_results(project, env, model=model))
    current = {}
    for version in run.versions:
        whole = next(
            iter(
                _captures.windows(
                    Path(run.folder), version.model, version.version, since=since, until=until
                )
            ),
            None,
        )
        if whole is not None:
            current[(version.model, version.version)] = whole
    return render(run, history, current, feedback), run
