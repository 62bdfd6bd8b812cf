"""Drift: each captured column of each served version against that version's own profile.

Numbers get PSI (on the profile's decile bins) and Kolmogorov-Smirnov; categories get
chi-square (a z-test when two values remain) and Jensen-Shannon; outputs are tested the
same way against the outputs' profile (prediction drift). Each finding names the
threshold it was judged against and the level of the ``drift_thresholds`` setting it
came from.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NotFound, ShipyardError
from ..registry import SETTING_DEFAULTS, RegistryAPI, to_json
from . import _captures, _stats
from ._reference import ColumnReference, Reference

RECORD_BATCH = 5000  # results per record_drift call (the registry takes 10,000 at most)
MIN_ROWS = 30  # fewer current values than this in a window: the tests say little; skipped
# Which threshold judges each test, and whether a score above it (else a p-value below it)
# is drift.
_JUDGED_BY = {
    "psi": ("psi", "score"),
    "ks": ("ks_pvalue", "p_value"),
    "chi2": ("chi2_pvalue", "p_value"),
    "z": ("chi2_pvalue", "p_value"),
    "js": ("js", "score"),
}


@dataclass(frozen=True)
class Thresholds:
    """The effective ``drift_thresholds``: every test's bound, and the level that set them."""

    values: dict[str, float]
    level: str = "default"

    @classmethod
    def from_setting(cls, setting: Any) -> Thresholds:
        """From ``get_setting('drift_thresholds', ...)`` (a level may set only some tests)."""
        data = to_json(setting)
        merged = {**SETTING_DEFAULTS["drift_thresholds"], **(data.get("value") or {})}
        return cls({k: float(v) for k, v in merged.items()}, str(data.get("level", "default")))

    def judge(self, result: _stats.TestResult) -> tuple[str, float, bool]:
        """``(threshold name, bound, drifted)`` for one test's result."""
        name, by = _JUDGED_BY[result.test]
        bound = self.values[name]
        if by == "score":
            return name, bound, result.score > bound
        return name, bound, result.p_value is not None and result.p_value < bound


@dataclass(frozen=True)
class Finding:
    """One test of one column in one window, judged against its threshold."""

    model: str
    version: str
    column: str
    test: str
    window_start: datetime
    window_end: datetime
    score: float
    p_value: float | None
    threshold_name: str
    threshold: float
    threshold_level: str
    drifted: bool
    rows: int
    detail: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The result as ``record_drift`` stores it."""
        return {
            "model": self.model,
            "version": self.version,
            "column": self.column,
            "test": self.test,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "score": _finite(self.score),
            "p_value": None if self.p_value is None else _finite(self.p_value),
            "threshold": self.threshold,
            "threshold_level": self.threshold_level,
            "drifted": self.drifted,
            "rows": self.rows,
            "detail": {"threshold": f"drift_thresholds.{self.threshold_name}", **self.detail},
        }


def _finite(value: float) -> float:
    return float(np.nan_to_num(value, nan=0.0, posinf=1e300, neginf=-1e300))


@dataclass
class VersionDrift:
    """The findings of one model version over its windows, and what was skipped and why."""

    model: str
    version: str
    reference_format: int | None = None
    reference: Reference | None = None
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        return sorted({f.column for f in self.findings if f.drifted})


def column_tests(
    reference: ColumnReference, current: np.ndarray, reference_rows: int
) -> list[_stats.TestResult]:
    """Every test ``reference`` supports, on a column's current (non-null) values."""
    if reference.kind == "numeric":
        counts = _stats.bin_counts(current, reference.cuts, reference.right_closed)
        found = [_stats.psi(reference.counts, counts)]
        if reference.percentiles is not None:
            found.append(_stats.ks(current, reference.percentiles, reference_rows))
        return found
    names, ref, cur, new = _stats.category_counts(
        reference.categories, reference.other, current.tolist()
    )
    test = _stats.category_test(names, ref, cur)
    distance = _stats.jensen_shannon(ref, cur)
    if new:
        extra = {"new_categories": list(new)[:10], "new_rows": sum(new.values())}
        test = _stats.TestResult(test.test, test.score, test.p_value, {**test.detail, **extra})
        distance = _stats.TestResult(distance.test, distance.score, None, extra)
    return [test, distance]


def window_drift(
    reference: Reference,
    window: _captures.Window,
    thresholds: Thresholds,
    min_rows: int = MIN_ROWS,
) -> tuple[list[Finding], dict[str, str]]:
    """The findings of one window, and the columns skipped with the reason."""
    findings: list[Finding] = []
    skipped: dict[str, str] = {}
    live = window.live()
    for name, column in reference.columns.items():
        captured = live.column(name if name.startswith("output.") else f"input.{name}")
        if captured is None:
            skipped[name] = "not in the captured requests"
            continue
        current = _captures.values(captured, column.kind)
        if len(current) < min_rows:
            skipped[name] = f"{len(current)} captured values, fewer than {min_rows}"
            continue
        if column.rows == 0:
            skipped[name] = "the reference has no values"
            continue
        for result in column_tests(column, current, column.rows):
            threshold_name, bound, drifted = thresholds.judge(result)
            findings.append(
                Finding(
                    window.model,
                    window.version,
                    name,
                    result.test,
                    window.start,
                    window.end,
                    result.score,
                    result.p_value,
                    threshold_name,
                    bound,
                    thresholds.level,
                    drifted,
                    len(current),
                    _rounded(result.detail),
                )
            )
    return findings, skipped


def _rounded(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in detail.items()}


@dataclass
class DriftRun:
    """One ``monitor drift`` run over an environment: per version, what was found."""

    project: str
    environment: str
    folder: str
    versions: list[VersionDrift]
    recorded: int = 0

    @property
    def findings(self) -> list[Finding]:
        return [f for v in self.versions for f in v.findings]

    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "project": self.project,
            "environment": self.environment,
            "folder": self.folder,
            "recorded": self.recorded,
            "drifted": self.drifted,
            "versions": [
                {
                    "model": v.model,
                    "version": v.version,
                    "reference_format": v.reference_format,
                    "drifted_columns": v.drifted_columns,
                    "skipped": v.skipped,
                    "results": [f.record() for f in v.findings],
                }
                for v in self.versions
            ],
        }


def thresholds_for(registry: RegistryAPI, project: str, env: str, model: str) -> Thresholds:
    """The model's effective thresholds in ``env`` (the environment's if it is not deployed)."""
    try:
        setting = registry.get_setting("drift_thresholds", project, env, model)
    except NotFound:
        setting = registry.get_setting("drift_thresholds", project, env)
    return Thresholds.from_setting(setting)


def reference_of(registry: RegistryAPI, project: str, model: str, version: str) -> Reference:
    """A registered version's reference profile (its bundle fetched and verified)."""
    with tempfile.TemporaryDirectory(prefix="shipyard-monitor-") as folder:
        path = registry.fetch_bundle(project, model, version, folder)
        return Reference.from_bundle(Path(path))


def run_drift(
    registry: RegistryAPI,
    project: str,
    env: str,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window: timedelta | None = None,
    folder: Path | None = None,
    min_rows: int = MIN_ROWS,
    record: bool = True,
) -> DriftRun:
    """Test every captured version of ``env`` (or of ``model``) against its profile.

    ``folder`` overrides where captures are read (default: the environment's capture
    folder). With ``record``, the findings are stored in the registry (``record_drift``).
    A version whose bundle cannot be fetched or has no profile is reported as skipped.
    """
    if folder is None:
        config = to_json(registry.status(project, env))["config"]
        folder = _captures.capture_folder(project, env, config)
    versions: list[VersionDrift] = []
    thresholds: dict[str, Thresholds] = {}
    for name, label in _captures.captured_versions(folder, model):
        drift = VersionDrift(name, label)
        versions.append(drift)
        try:
            reference = reference_of(registry, project, name, label)
        except ShipyardError as exc:
            drift.skipped["*"] = f"no reference profile: {exc}"
            continue
        drift.reference_format, drift.reference = reference.format, reference
        drift.skipped.update(reference.skipped)
        if name not in thresholds:
            thresholds[name] = thresholds_for(registry, project, env, name)
        parts = list(_captures.windows(folder, name, label, since=since, until=until, size=window))
        if parts and all(p.live().rows == 0 for p in parts):
            drift.skipped = {"*": "a shadow version: no live answers (see monitor compare)"}
            continue
        for part in parts:
            found, skipped = window_drift(reference, part, thresholds[name], min_rows)
            drift.findings.extend(found)
            for column, why in skipped.items():
                drift.skipped.setdefault(column, why)
    run = DriftRun(project, env, str(folder), versions)
    if record:
        records = [f.record() for f in run.findings]
        for start in range(0, len(records), RECORD_BATCH):
            batch = {"results": records[start : start + RECORD_BATCH]}
            run.recorded += int(registry.record_drift(project, env, batch))
    return run
