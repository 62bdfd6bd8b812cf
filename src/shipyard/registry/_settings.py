"""Settings: the known keys, their defaults, and the validation of a value.

Levels, most specific first: ``component`` (a component in one environment),
``environment``, ``project``, ``global``; a level that does not set a key inherits it
from the next, and ``default`` is used when no level sets it.

| key | value |
| --- | --- |
| ``replicas`` | an integer from 1 to 1000 (default 1) |
| ``worker_group`` | the name of a defined worker group (default: none) |
| ``low_latency_mode`` | true or false (default false) |
| ``traffic`` | ``{"weights": {tag: percent}, "shadow": tag or null}``; component level only |
| ``require_signature`` | ``auto`` (default: on at the end of a promotion chain), true or false |
| ``allow_pickle`` | true or false (default false): serve and batch may load a plain pickle |
| ``drift_thresholds`` | ``{"psi": 0.2, "ks_pvalue": 0.01, "chi2_pvalue": 0.01, "js": 0.1}``: |
|  | where ``shipyard monitor drift`` flags a column; a level may set some of them |
| ``strict_inputs`` | true or false (default false): serving refuses a request naming a |
|  | column no input table declares (422 naming it) instead of ignoring it |
| ``approvals_required`` | 0 to 10 (default 0): how many people other than the requester |
|  | must approve a promotion or rollback into the environment (see ``_approvals``) |

``require_signature``, ``allow_pickle`` and ``approvals_required`` are policies (see
``_signing`` and ``_approvals``): only the admin role may set them, and only admins may set
any setting at the global level.

Values may be given as text (what a command line passes): ``"3"``, ``"true"``, or JSON
for ``traffic``; they are stored as JSON values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidSetting
from ._rows import SettingRow
from ._types import EffectiveSetting

DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "worker_group": None,
    "low_latency_mode": False,
    "traffic": None,
    "require_signature": "auto",
    "allow_pickle": False,
    "drift_thresholds": {"psi": 0.2, "ks_pvalue": 0.01, "chi2_pvalue": 0.01, "js": 0.1},
    "approvals_required": 0,
    "strict_inputs": False,
}
# Settings that govern who may change what: only the admin role may set them.
POLICY_KEYS = ("require_signature", "allow_pickle", "approvals_required")
MAX_APPROVALS = 10
KEYS = tuple(DEFAULTS)
LEVELS = ("component", "environment", "project", "global")
MAX_REPLICAS = 1000  # a typo's bound (30000 for 3): no pool of ours is that large
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_TAG = re.compile(r"^v[1-9][0-9]*$")


def scope_key(
    project_id: int | None = None,
    environment_id: int | None = None,
    component_id: int | None = None,
) -> str:
    """What makes a level unique in the settings table: ``global``, ``p3``, ``e7``, ``e7/c2``.

    Give the ids down to the level meant; a component level is a component in one environment.
    """
    if component_id is not None:
        return f"e{environment_id}/c{component_id}"
    if environment_id is not None:
        return f"e{environment_id}"
    return f"p{project_id}" if project_id is not None else "global"


def chain(
    project_id: int | None = None,
    environment_id: int | None = None,
    component_id: int | None = None,
) -> list[tuple[str, str]]:
    """The ``(level, scope key)`` pairs a setting is looked up at, most specific first."""
    levels = [("global", "global")]
    if project_id is not None:
        levels.insert(0, ("project", scope_key(project_id)))
    if environment_id is not None:
        levels.insert(0, ("environment", scope_key(project_id, environment_id)))
    if component_id is not None:
        levels.insert(0, ("component", scope_key(project_id, environment_id, component_id)))
    return levels


def values_at(session: Session, scope_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{scope key: {key: value}}`` of the settings set at those levels."""
    keys = sorted(set(scope_keys))
    found: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for row in session.execute(select(SettingRow).where(SettingRow.scope_key.in_(keys))).scalars():
        found[row.scope_key][row.key] = row.value
    return found


def effective(
    key: str, levels: Sequence[tuple[str, str]], values: dict[str, dict[str, Any]]
) -> EffectiveSetting:
    """The value of ``key`` at ``levels[0]``: the first level that sets it, else the default."""
    asked = levels[0][0]
    for level, where in levels:
        if key in values.get(where, {}):
            return EffectiveSetting(key, values[where][key], level, level != asked)
    return EffectiveSetting(key, DEFAULTS[key], "default", True)


def check_key(key: str) -> None:
    """Raise InvalidSetting for a key that is not a setting."""
    if key not in DEFAULTS:
        raise InvalidSetting(key, f"unknown setting (settings: {', '.join(KEYS)})")


def validate(
    key: str,
    value: Any,
    *,
    level: str,
    worker_groups: Collection[str],
    tags: Collection[str] = (),
) -> Any:
    """The value to store for ``key`` at ``level``; raise InvalidSetting saying why not.

    ``worker_groups`` are the defined groups; ``tags`` are the component's tagged
    versions (for ``traffic``, which only a component level may set).
    """
    check_key(key)
    if key == "replicas":
        return _replicas(value)
    if key in ("low_latency_mode", "allow_pickle", "strict_inputs"):
        return _boolean(key, value)
    if key == "require_signature":
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return _boolean(key, value)
    if key == "drift_thresholds":
        return _drift_thresholds(value)
    if key == "approvals_required":
        return _approvals(value)
    if key == "worker_group":
        if not isinstance(value, str) or value not in worker_groups:
            known = ", ".join(sorted(worker_groups)) or "none defined"
            raise InvalidSetting(key, f"{value!r} is not a worker group (worker groups: {known})")
        return value
    if level != "component":
        raise InvalidSetting(
            key, "traffic splits the versions of one component: set it at component level"
        )
    return _traffic(value, tags)


def _replicas(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSetting("replicas", f"{value!r} is not a whole number")
    if value < 1:
        raise InvalidSetting("replicas", f"{value} is below 1")
    if value > MAX_REPLICAS:
        raise InvalidSetting("replicas", f"{value} is above {MAX_REPLICAS}")
    return value


def _approvals(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSetting("approvals_required", f"{value!r} is not a whole number")
    if not 0 <= value <= MAX_APPROVALS:
        raise InvalidSetting("approvals_required", f"{value} is not between 0 and {MAX_APPROVALS}")
    return value


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    if isinstance(value, bool):
        return value
    raise InvalidSetting(key, f"{value!r} is not true or false")


def _traffic(value: Any, tags: Collection[str]) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidSetting("traffic", f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidSetting(
            "traffic", 'expected {"weights": {"v1": 90, "v2": 10}, "shadow": null}'
        )
    unknown = set(value) - {"weights", "shadow"}
    if unknown:
        raise InvalidSetting("traffic", f"unknown field(s) {', '.join(sorted(unknown))}")
    weights = value.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise InvalidSetting("traffic", "'weights' must map version tags to percentages")
    known = ", ".join(sorted(tags, key=lambda t: int(t[1:]))) or "none tagged"

    def check_tag(tag: Any, role: str) -> None:
        if not isinstance(tag, str) or not _TAG.match(tag) or tag not in tags:
            raise InvalidSetting("traffic", f"{role} {tag!r} is not a tagged version ({known})")

    for tag, weight in weights.items():
        check_tag(tag, "version")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidSetting("traffic", f"weight of {tag} must be a whole percent 0-100")
    total = sum(weights.values())
    if total != 100:
        raise InvalidSetting("traffic", f"weights add up to {total}, not 100")
    shadow = value.get("shadow")
    if shadow is not None:
        check_tag(shadow, "shadow version")
        if weights.get(shadow, 0) > 0:
            raise InvalidSetting("traffic", f"shadow version {shadow} also receives live traffic")
    return {"weights": dict(weights), "shadow": shadow}


def _drift_thresholds(value: Any) -> dict[str, float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidSetting("drift_thresholds", f"not valid JSON ({exc})") from None
    known = DEFAULTS["drift_thresholds"]
    if not isinstance(value, dict) or not value:
        raise InvalidSetting("drift_thresholds", 'expected an object such as {"psi": 0.25}')
    unknown = set(value) - set(known)
    if unknown:
        raise InvalidSetting(
            "drift_thresholds",
            f"unknown test(s) {', '.join(sorted(unknown))} (tests: {', '.join(known)})",
        )
    for name, bound in value.items():
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not bound > 0:
            raise InvalidSetting("drift_thresholds", f"{name} must be a number above 0")
        if name.endswith("_pvalue") and not bound < 1:
            raise InvalidSetting("drift_thresholds", f"{name} is a p-value: below 1")
    return {name: float(bound) for name, bound in value.items()}
