"""Reading what serving captured: ``FOLDER/MODEL/VERSION/*.parquet``, cut into time windows.

The folder is where ``shipyard serve`` writes an environment's capture: the environment
config's ``capture.folder`` under this host's capture root (``$SHIPYARD_CAPTURE_ROOT``),
else ``ROOT/PROJECT/ENVIRONMENT``. Columns: ``request_id``, ``row`` (a request's row,
from 0; absent in files written before it was recorded), ``captured_at``, ``version``,
``role`` (``live`` or ``shadow``; absent likewise), ``latency_ms``, ``input.TABLE.COLUMN``
and ``output.NODE``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..registry import Roots, capture_root

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str = "--window") -> timedelta:
    """``30m``, ``1h``, ``7d`` as a timedelta; UsageError naming ``what`` otherwise."""
    found = _DURATION.match(text.strip().lower())
    if not found or float(found.group(1)) <= 0:
        raise UsageError(f"{what} {text!r} is not a duration such as 30m, 1h or 7d")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def parse_time(text: str, what: str = "--since", now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it names no zone), or a duration back from ``now``."""
    if _DURATION.match(text.strip().lower()):
        return (now or datetime.now(UTC)) - parse_duration(text, what)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is neither an ISO 8601 time nor a duration such as 24h"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def capture_folder(
    project: str, environment: str, config: dict[str, Any], root: Roots | None = None
) -> Path:
    """Where serving writes this environment's capture (see the module's docstring).

    Raises PermissionDenied when the configured folder lies outside the capture root.
    """
    entry = config.get("capture") or {}
    configured = entry.get("folder") if isinstance(entry, dict) else None
    root = root or capture_root()
    wanted = configured if configured else os.path.join(project, environment)
    return Path(root.locate(str(wanted), "the capture folder"))


@dataclass(frozen=True)
class Window:
    """Captured rows of one model version between ``start`` (inclusive) and ``end``."""

    model: str
    version: str
    start: datetime
    end: datetime
    table: Any  # pyarrow.Table

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def column(self, name: str) -> Any:
        """A column by capture name (``input.t.c``, ``output.n``), or None when absent."""
        if name in self.table.column_names:
            return self.table.column(name)
        return None

    def live(self) -> Window:
        """Only the rows the caller was answered with (not a shadow version's)."""
        if "role" not in self.table.column_names:
            return self
        import pyarrow.compute as pc

        return Window(
            self.model,
            self.version,
            self.start,
            self.end,
            self.table.filter(pc.equal(self.table.column("role"), "live")),
        )


def read_version(folder: Path, since: datetime | None, until: datetime | None) -> Any:
    """Every captured row in ``folder`` (one model version) in [since, until), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = [pq.read_table(path) for path in sorted(folder.glob("*.parquet"))]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default")
    at = table.column("captured_at")
    if since is not None:
        table = table.filter(pc.greater_equal(at, pa.scalar(since, at.type)))
        at = table.column("captured_at")
    if until is not None:
        table = table.filter(pc.less(at, pa.scalar(until, at.type)))
    return table if table.num_rows else None


def captured_versions(folder: Path, model: str | None = None) -> list[tuple[str, str]]:
    """The ``(model, version)`` folders under a capture folder, sorted."""
    if not folder.is_dir():
        return []
    found: list[tuple[str, str]] = []
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if model is not None and model_dir.name != model:
            continue
        found.extend((model_dir.name, v.name) for v in sorted(model_dir.iterdir()) if v.is_dir())
    return found


def windows(
    folder: Path,
    model: str,
    version: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    size: timedelta | None = None,
) -> Iterator[Window]:
    """The version's captured rows in windows of ``size`` (aligned to multiples of it since
    1970), or one window over everything when ``size`` is None. Empty windows are left out."""
    import pyarrow as pa

    table = read_version(folder / model / version, since, until)
    if table is None:
        return
    micros = table.column("captured_at").cast("int64").to_numpy()
    if size is None:
        start = since or from_micros(int(micros.min()))
        end = until or from_micros(int(micros.max()) + 1)
        yield Window(model, version, start, end, table)
        return
    step = int(size.total_seconds() * 1_000_000)
    slots = micros // step
    for slot in np.unique(slots):
        yield Window(
            model,
            version,
            from_micros(int(slot) * step),
            from_micros((int(slot) + 1) * step),
            table.filter(pa.array(slots == slot)),
        )


def from_micros(value: int) -> datetime:
    """A capture time (microseconds since 1970, UTC) as a datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def values(column: Any, kind: str) -> np.ndarray:
    """A captured column's non-null values: float64 for ``numeric``, text otherwise.

    Booleans read as ``True``/``False`` and numbers as their text, as the profile keeps
    categories.
    """
    import pyarrow as pa

    column = column.drop_null() if hasattr(column, "drop_null") else column
    if kind == "numeric":
        data = column.to_numpy(zero_copy_only=False).astype(np.float64)
        return data[~np.isnan(data)]
    if pa.types.is_boolean(column.type):
        return np.array(["True" if v else "False" for v in column.to_pylist()], dtype=object)
    return np.array([str(v) for v in column.to_pylist()], dtype=object)
