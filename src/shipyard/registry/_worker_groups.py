"""Worker groups: named pools of machines that settings pin environments to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput, NotFound
from . import _audit, _lookup
from ._core import RegistryCore
from ._lookup import check_name, listing, now
from ._rows import (
    ComponentRow,
    EnvironmentRow,
    ProjectRow,
    SettingRow,
    WorkerGroupRow,
)
from ._types import (
    WorkerGroup,
)


class WorkerGroupsMixin(RegistryCore):
    """Worker groups: named pools of machines that settings pin environments to."""

    @staticmethod
    def _worker_group_info(group: WorkerGroupRow) -> WorkerGroup:
        return WorkerGroup(
            name=group.name,
            machine_size=group.machine_size,
            count=group.count,
            created_at=_audit.utc_text(group.created_at),
            created_by=group.created_by,
        )

    @staticmethod
    def _check_pool(machine_size: str, count: int) -> None:
        if not isinstance(machine_size, str) or not machine_size.strip():
            raise InvalidInput("a worker group needs a machine size (e.g. 'cpu-4-16gb')")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInput(f"worker group machine count {count!r} must be a whole number >= 1")

    def _worker_group(self, session: Session, name: str, lock: bool = False) -> WorkerGroupRow:
        found = _lookup.one(
            session, select(WorkerGroupRow).where(WorkerGroupRow.name == name), lock
        )
        if found is None:
            names = session.execute(
                select(WorkerGroupRow.name).order_by(WorkerGroupRow.name)
            ).scalars()
            raise NotFound(
                f"worker group '{name}' does not exist (worker groups: {listing(list(names))})"
            )
        return found

    def create_worker_group(self, name: str, machine_size: str, count: int = 1) -> WorkerGroup:
        """Define a pool of ``count`` machines of ``machine_size``; Conflict if the name exists."""
        check_name("worker group", name)
        self._check_pool(machine_size, count)
        with self._write() as session:
            if session.execute(
                select(WorkerGroupRow.id).where(WorkerGroupRow.name == name)
            ).first():
                raise Conflict(f"worker group '{name}' already exists")
            group = WorkerGroupRow(
                name=name,
                machine_size=machine_size,
                count=count,
                created_at=now(),
                created_by=self.actor,
            )
            session.add(group)
            session.flush()
            info = self._worker_group_info(group)
            self._record(
                session,
                "worker_group.create",
                f"worker_group/{name}",
                None,
                {"machine_size": machine_size, "count": count},
            )
            return info

    def update_worker_group(
        self, name: str, machine_size: str | None = None, count: int | None = None
    ) -> WorkerGroup:
        """Change a worker group's machine size and/or count."""
        with self._write() as session:
            group = self._worker_group(session, name, lock=True)
            before = {"machine_size": group.machine_size, "count": group.count}
            machine_size = group.machine_size if machine_size is None else machine_size
            count = group.count if count is None else count
            self._check_pool(machine_size, count)
            group.machine_size, group.count = machine_size, count
            session.flush()
            self._record(
                session,
                "worker_group.update",
                f"worker_group/{name}",
                before,
                {"machine_size": machine_size, "count": count},
            )
            return self._worker_group_info(group)

    def list_worker_groups(self) -> list[WorkerGroup]:
        """Every worker group, by name."""
        with self._read() as session:
            groups = session.execute(select(WorkerGroupRow).order_by(WorkerGroupRow.name)).scalars()
            return [self._worker_group_info(g) for g in groups]

    def delete_worker_group(self, name: str) -> None:
        """Delete a worker group; Conflict listing the levels whose ``worker_group`` names it."""
        with self._write() as session:
            group = self._worker_group(session, name, lock=True)
            users = [
                row
                for row in session.execute(
                    select(SettingRow).where(SettingRow.key == "worker_group")
                ).scalars()
                if row.value == name
            ]
            if users:
                where = sorted(self._describe_scope(session, row) for row in users)
                raise Conflict(
                    f"worker group '{name}' is used by: {', '.join(where)}; set another group "
                    "there or let them inherit first"
                )
            before = {"machine_size": group.machine_size, "count": group.count}
            session.delete(group)
            session.flush()
            self._record(session, "worker_group.delete", f"worker_group/{name}", before, None)

    @staticmethod
    def _describe_scope(session: Session, row: SettingRow) -> str:
        names = [
            found.name
            for found in (
                session.get(ProjectRow, row.project_id) if row.project_id else None,
                session.get(EnvironmentRow, row.environment_id) if row.environment_id else None,
                session.get(ComponentRow, row.component_id) if row.component_id else None,
            )
            if found is not None
        ]
        return " ".join([row.scope, "/".join(names)]).strip()
