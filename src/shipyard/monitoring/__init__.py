"""Monitoring: drift against a bundle's own reference, performance from late labels,
comparisons of the versions an environment serves, alert rules and an HTML report.

Everything reads what serving captured (see ``shipyard.serving.Capture``) and what the
registry holds; drift results are stored back in the registry. See docs/monitoring.md.
"""

from ._alerts import Alert, CheckResult, Rule, check, check_webhook, read_rules
from ._captures import (
    Window,
    capture_folder,
    captured_versions,
    parse_duration,
    parse_time,
    windows,
)
from ._compare import Comparison, VersionSide, compare, parse_metrics
from ._drift import MIN_ROWS, DriftRun, Finding, Thresholds, VersionDrift, run_drift, window_drift
from ._feedback import Feedback, evaluate, read_labels
from ._reference import ColumnReference, Reference
from ._report import build as build_report
from ._report import render as render_report

__all__ = [
    "Alert",
    "CheckResult",
    "Rule",
    "build_report",
    "check",
    "check_webhook",
    "read_rules",
    "render_report",
    "MIN_ROWS",
    "ColumnReference",
    "Comparison",
    "Feedback",
    "DriftRun",
    "Finding",
    "Reference",
    "Thresholds",
    "VersionDrift",
    "VersionSide",
    "Window",
    "capture_folder",
    "captured_versions",
    "compare",
    "evaluate",
    "parse_duration",
    "parse_metrics",
    "parse_time",
    "read_labels",
    "run_drift",
    "window_drift",
    "windows",
]
