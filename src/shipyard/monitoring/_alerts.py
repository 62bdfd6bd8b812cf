"""Alert rules over stored drift results and late-label performance, and their webhook.

Rules live in the environment config under ``monitoring`` (it does not move on promotion:
each environment alerts its own people), or in a file given to ``monitor check``::

    monitoring:
      webhook: https://hooks.example.org/shipyard      # POSTed a JSON body when rules fire
      alerts:
        - {name: income drift, drift: psi, column: loans.income, windows: 3}
        - {name: any drift, drift: any}                # every column, the newest window
        - {name: auc floor, metric: roc_auc, below: 0.7}

A ``drift`` rule fires for a column (every column unless ``column`` names one) whose
test (``psi``, ``ks``, ``chi2``, ``z``, ``js`` or ``any``) was beyond its threshold in
each of the newest ``windows`` stored windows (default 1). A ``metric`` rule fires for a
version whose figure from the labels (``accuracy``, ``roc_auc``, ``log_loss``, ``brier``,
``mae``, ``rmse``) is ``below`` or ``above`` a bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import ShipyardError, UsageError

TESTS = ("psi", "ks", "chi2", "z", "js", "any")
METRICS = ("accuracy", "roc_auc", "log_loss", "brier", "mae", "rmse")
WEBHOOK_TIMEOUT = 10.0  # seconds


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the module's docstring)."""

    name: str
    drift: str | None = None
    column: str | None = None
    windows: int = 1
    metric: str | None = None
    below: float | None = None
    above: float | None = None

    @classmethod
    def parse(cls, index: int, data: Any) -> Rule:
        """A rule from the config; UsageError naming ``alerts[i].field`` when it is wrong."""
        where = f"monitoring.alerts[{index}]"
        if not isinstance(data, Mapping):
            raise UsageError(f"{where} must be an object")
        unknown = set(data) - {"name", "drift", "column", "windows", "metric", "below", "above"}
        if unknown:
            raise UsageError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
        name = str(data.get("name") or f"rule {index + 1}")
        drift, metric = data.get("drift"), data.get("metric")
        if (drift is None) == (metric is None):
            raise UsageError(f"{where} needs one of 'drift' (a test) or 'metric'")
        if drift is not None and drift not in TESTS:
            raise UsageError(f"{where}.drift must be one of {', '.join(TESTS)}, not {drift!r}")
        windows = data.get("windows", 1)
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise UsageError(f"{where}.windows must be a whole number >= 1")
        below, above = (_bound(where, key, data.get(key)) for key in ("below", "above"))
        if metric is not None:
            if metric not in METRICS:
                raise UsageError(f"{where}.metric must be one of {', '.join(METRICS)}")
            if (below is None) == (above is None):
                raise UsageError(f"{where} needs one of 'below' or 'above'")
        column = data.get("column")
        return cls(
            name, drift, None if column is None else str(column), windows, metric, below, above
        )


def _bound(where: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where}.{key} must be a number")
    return float(value)


@dataclass(frozen=True)
class Alert:
    """A rule that fired, on what, and why (``message`` is one readable line)."""

    rule: str
    model: str
    version: str
    message: str
    column: str | None = None
    test: str | None = None
    windows: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def read_rules(config: Mapping[str, Any]) -> tuple[list[Rule], str | None]:
    """``(rules, webhook)`` from an environment config's (or a rules file's) ``monitoring``."""
    entry = config.get("monitoring") or {}
    if not isinstance(entry, Mapping):
        raise UsageError("monitoring must be an object with 'alerts' and 'webhook'")
    alerts = entry.get("alerts") or []
    if not isinstance(alerts, list):
        raise UsageError("monitoring.alerts must be a list of rules")
    webhook = entry.get("webhook")
    if webhook is not None:
        check_webhook(str(webhook))
    return [Rule.parse(i, rule) for i, rule in enumerate(alerts)], webhook


def check_webhook(url: str) -> str:
    """``url`` when it is http(s) with a host; UsageError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("monitoring.webhook must be an http:// or https:// URL")
    return url


def shown_url(url: str) -> str:
    """A webhook's scheme, host and port only: its path or query may hold a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


def drift_alerts(rules: Sequence[Rule], results: Sequence[Mapping[str, Any]]) -> list[Alert]:
    """The drift rules that fire on stored results (``drift_results`` as JSON data)."""
    history: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
    for result in sorted(results, key=lambda r: str(r["window_end"])):
        key = (result["model"], result["version"], result["column"], result["test"])
        history.setdefault(key, []).append(result)
    fired: list[Alert] = []
    for rule in rules:
        if rule.drift is None:
            continue
        hits: dict[tuple[str, str, str], tuple[str, list[str]]] = {}
        for (model, version, column, test), found in history.items():
            if rule.column is not None and column != rule.column:
                continue
            if rule.drift != "any" and test != rule.drift:
                continue
            newest = found[-rule.windows :]
            if len(newest) == rule.windows and all(r["drifted"] for r in newest):
                hits.setdefault((model, version, column), (test, [r["window_end"] for r in newest]))
        for (model, version, column), (test, ends) in sorted(hits.items()):
            last = history[(model, version, column, test)][-1]
            fired.append(
                Alert(
                    rule.name,
                    model,
                    version,
                    f"{model} {version} {column}: {test} {last['score']:.4g} beyond "
                    f"{last['threshold']:g} in the last {rule.windows} window(s)",
                    column,
                    test,
                    ends,
                )
            )
    return fired


def metric_alerts(
    rules: Sequence[Rule], model: str, versions: Sequence[Mapping[str, Any]]
) -> list[Alert]:
    """The metric rules that fire on performance figures (``Feedback.versions``)."""
    fired = []
    for rule in rules:
        if rule.metric is None:
            continue
        for figures in versions:
            value = figures.get(rule.metric)
            if value is None:
                continue
            low = rule.below is not None and value < rule.below
            high = rule.above is not None and value > rule.above
            if low or high:
                bound = rule.below if low else rule.above
                fired.append(
                    Alert(
                        rule.name,
                        model,
                        str(figures["version"]),
                        f"{model} {figures['version']}: {rule.metric} {value:.4g} "
                        f"{'below' if low else 'above'} {bound:g} "
                        f"({figures.get('rows', 0)} labelled rows)",
                    )
                )
    return fired


def post_webhook(url: str, project: str, environment: str, alerts: Sequence[Alert]) -> None:
    """POST ``{project, environment, checked_at, alerts: [...]}`` as JSON to ``url``.

    Raises ShipyardError (naming only the webhook's host) when it cannot be delivered or
    is not answered with a 2xx.
    """
    import httpx

    body = {
        "project": project,
        "environment": environment,
        "checked_at": datetime.now(UTC).isoformat(),
        "alerts": [a.to_json() for a in alerts],
    }
    try:
        response = httpx.post(url, json=body, timeout=WEBHOOK_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ShipyardError(
            f"the alert webhook at {shown_url(url)} could not be reached ({type(exc).__name__})"
        ) from None
    if not 200 <= response.status_code < 300:
        raise ShipyardError(
            f"the alert webhook at {shown_url(url)} answered {response.status_code}"
        )


@dataclass
class CheckResult:
    """What ``monitor check`` found: the alerts that fired and the rules it could not judge."""

    rules: int
    alerts: list[Alert]
    skipped: list[str]
    webhook: str | None = None  # where the alerts were posted (host only)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "fired": len(self.alerts),
            "alerts": [a.to_json() for a in self.alerts],
            "skipped": self.skipped,
            "webhook": self.webhook,
        }


def check(
    registry: Any,
    project: str,
    env: str,
    rules: Sequence[Rule],
    *,
    webhook: str | None = None,
    feedback: Any = None,
    model: str | None = None,
) -> CheckResult:
    """Evaluate ``rules`` on the stored drift results (and ``feedback``'s figures).

    Posts the alerts to ``webhook`` when any fired; raises ShipyardError when it cannot.
    Metric rules with no ``feedback`` are listed as skipped.
    """
    from ..registry import to_json

    results = to_json(registry.drift_results(project, env, model=model))
    alerts = drift_alerts(rules, results)
    skipped = []
    if feedback is not None:
        alerts += metric_alerts(rules, feedback.model, feedback.versions)
    else:
        skipped = [f"{r.name}: {r.metric} needs labels (--labels)" for r in rules if r.metric]
    result = CheckResult(len(rules), alerts, skipped)
    if alerts and webhook:
        post_webhook(webhook, project, env, alerts)
        result.webhook = shown_url(webhook)
    return result
