"""Drift results: what ``shipyard monitor drift`` found, per environment, version, column, window.

The monitoring service computes the tests; the registry keeps their results so that
reports, alert rules and the serving ``/metrics`` gauges read one history. Results are
observations, not changes to what an environment runs: recording them makes no revision
and no audit event. Recording a window again replaces what was stored for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from ..errors import InvalidInput
from . import _audit, _lookup
from ._core import RegistryCore
from ._lookup import now
from ._rows import DriftResultRow, EnvironmentRow
from ._types import DriftResult

TESTS = ("psi", "ks", "chi2", "z", "js")
MAX_RESULTS = 10_000  # in one call: a run over a few hundred columns and windows
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}")  # a served version: v2, 3, 1.0.0
_NUMBERS = ("score", "threshold")


def _result(project: str, env: str, row: DriftResultRow) -> DriftResult:
    return DriftResult(
        project=project,
        environment=env,
        model=row.model,
        version=row.version,
        column=row.column_name,
        test=row.test,
        window_start=_audit.utc_text(row.window_start),
        window_end=_audit.utc_text(row.window_end),
        score=row.score,
        p_value=row.p_value,
        threshold=row.threshold,
        threshold_level=row.threshold_level,
        drifted=row.drifted,
        rows=row.rows,
        detail=dict(row.detail),
        created_at=_audit.utc_text(row.created_at),
        created_by=row.created_by,
    )


def _time(where: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be an ISO 8601 time, not {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where} {value!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _number(where: str, value: Any, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{where} must be a finite number, not {value!r}")
    return float(value)


def _text(where: str, value: Any, pattern: re.Pattern[str] | None, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{where} must be text of 1 to {limit} characters")
    if not value.isprintable():  # NUL and other control characters: PostgreSQL refuses NUL
        raise InvalidInput(f"{where} holds control characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidInput(f"{where} {value!r} is not a model name or version label")
    return value


def _row(index: int, item: Any, environment_id: int, actor: str) -> DriftResultRow:
    """One result as sent, checked field by field (InvalidInput naming ``results[i].field``)."""
    where = f"results[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where} must be an object")
    unknown = set(item) - {
        "model",
        "version",
        "column",
        "test",
        "window_start",
        "window_end",
        "score",
        "p_value",
        "threshold",
        "threshold_level",
        "drifted",
        "rows",
        "detail",
    }
    if unknown:
        raise InvalidInput(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
    test = item.get("test")
    if test not in TESTS:
        raise InvalidInput(f"{where}.test must be one of {', '.join(TESTS)}, not {test!r}")
    start = _time(f"{where}.window_start", item.get("window_start"))
    end = _time(f"{where}.window_end", item.get("window_end"))
    if end < start:
        raise InvalidInput(f"{where}.window_end is before its window_start")
    drifted, rows, detail = item.get("drifted"), item.get("rows"), item.get("detail", {})
    if not isinstance(drifted, bool):
        raise InvalidInput(f"{where}.drifted must be true or false")
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows < 2**62:
        raise InvalidInput(f"{where}.rows must be a whole number >= 0")
    if not isinstance(detail, Mapping):
        raise InvalidInput(f"{where}.detail must be an object")
    score, threshold = (_number(f"{where}.{name}", item.get(name)) for name in _NUMBERS)
    return DriftResultRow(
        environment_id=environment_id,
        model=_text(f"{where}.model", item.get("model"), _lookup.NAME, 63),
        version=_text(f"{where}.version", item.get("version"), _LABEL, 32),
        column_name=_text(f"{where}.column", item.get("column"), None, 255),
        test=test,
        window_start=start,
        window_end=end,
        score=score,
        p_value=_number(f"{where}.p_value", item.get("p_value"), optional=True),
        threshold=threshold,
        threshold_level=_text(
            f"{where}.threshold_level", item.get("threshold_level", "default"), None, 16
        ),
        drifted=drifted,
        rows=rows,
        detail=_audit.as_json_data(dict(detail)),
        created_at=now(),
        created_by=actor,
    )


class DriftMixin(RegistryCore):
    """Drift results per environment, model version, column, test and window."""

    def record_drift(self, project: str, env: str, results: dict[str, Any]) -> int:
        """Store the drift results of one monitoring run; returns how many were stored.

        ``results`` is ``{"results": [{model, version, column, test, window_start,
        window_end, score, p_value, threshold, threshold_level, drifted, rows, detail}]}``
        (see ``DriftResult``). A result for a model, version, column, test and window
        already stored replaces it. Raises InvalidInput naming the first field that is
        wrong (nothing is stored then), NotFound for an unknown project or environment.
        """
        self._require_role("deployer", "recording drift results")
        items = results.get("results") if isinstance(results, Mapping) else None
        if not isinstance(items, list):
            raise InvalidInput("results must be an object with a list 'results'")
        if len(items) > MAX_RESULTS:
            raise InvalidInput(f"results holds {len(items)} results; send at most {MAX_RESULTS}")
        with self._write() as session:
            environment = _lookup.environment(session, _lookup.project(session, project), env)
            rows = [_row(i, item, environment.id, self.actor) for i, item in enumerate(items)]
            for row in rows:
                session.execute(
                    delete(DriftResultRow).where(
                        DriftResultRow.environment_id == environment.id,
                        DriftResultRow.model == row.model,
                        DriftResultRow.version == row.version,
                        DriftResultRow.column_name == row.column_name,
                        DriftResultRow.test == row.test,
                        DriftResultRow.window_start == row.window_start,
                        DriftResultRow.window_end == row.window_end,
                    )
                )
            session.add_all(rows)
            return len(rows)

    def drift_results(
        self,
        project: str,
        env: str,
        model: str | None = None,
        version: str | None = None,
        since: str | None = None,
        latest: bool = False,
    ) -> list[DriftResult]:
        """Stored drift results of an environment, oldest window first.

        Filters: ``model``, ``version`` (the label served: ``v2`` or a version id),
        ``since`` (windows ending at or after this ISO 8601 time). ``latest`` keeps only
        the newest window of each model, version, column and test.
        """
        with self._read() as session:
            environment: EnvironmentRow = _lookup.environment(
                session, _lookup.project(session, project), env
            )
            query = select(DriftResultRow).where(DriftResultRow.environment_id == environment.id)
            if model is not None:
                query = query.where(DriftResultRow.model == model)
            if version is not None:
                query = query.where(DriftResultRow.version == version)
            if since is not None:
                query = query.where(DriftResultRow.window_end >= _time("since", since))
            order = (DriftResultRow.window_end, DriftResultRow.id)
            rows = list(session.execute(query.order_by(*order)).scalars())
        if latest:
            newest: dict[tuple[str, str, str, str], DriftResultRow] = {}
            for row in rows:  # in window order: a later one replaces an earlier one
                newest[(row.model, row.version, row.column_name, row.test)] = row
            rows = sorted(newest.values(), key=lambda r: (r.window_end, r.id))
        return [_result(project, env, row) for row in rows]
