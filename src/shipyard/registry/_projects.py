"""Projects: create, list, get and delete, each with its environment chain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput
from . import _audit, _lookup
from ._core import DEFAULT_ENVIRONMENTS, RegistryCore
from ._lookup import check_name, now
from ._rows import (
    ComponentRow,
    ProjectRow,
)
from ._state import State
from ._types import (
    Project,
)


class ProjectsMixin(RegistryCore):
    """Projects: create, list, get and delete, each with its environment chain."""

    def _project_info(self, session: Session, project: ProjectRow) -> Project:
        return Project(
            name=project.name,
            created_at=_audit.utc_text(project.created_at),
            created_by=project.created_by,
            environments=_lookup.environment_names(session, project),
        )

    def create_project(
        self, name: str, environments: Sequence[str] = DEFAULT_ENVIRONMENTS
    ) -> Project:
        """Create a project with a promotion chain (default integration -> uat -> production).

        Raises Conflict when the project exists, InvalidInput for a bad or repeated name.
        """
        check_name("project", name)
        chain = [check_name("environment", e) for e in environments]
        if not chain:
            raise InvalidInput("a project needs at least one environment")
        if len(set(chain)) != len(chain):
            raise InvalidInput(f"environment names repeat in {', '.join(chain)}")
        with self._write() as session:
            if session.execute(select(ProjectRow.id).where(ProjectRow.name == name)).first():
                raise Conflict(f"project '{name}' already exists")
            project = ProjectRow(name=name, created_at=now(), created_by=self.actor)
            session.add(project)
            session.flush()
            created = [
                self._new_environment(
                    session, project, e, None, None, State(), "create environment"
                )
                for e in chain
            ]
            for env, following in zip(created, created[1:], strict=False):
                env.promotes_to_id = following.id
            session.flush()
            info = self._project_info(session, project)
            self._record(
                session, "project.create", f"project/{name}", None, {"environments": chain}
            )
            return info

    def list_projects(self) -> list[Project]:
        """Every project, by name."""
        with self._read() as session:
            projects = session.execute(select(ProjectRow).order_by(ProjectRow.name)).scalars().all()
            return [self._project_info(session, p) for p in projects]

    def get_project(self, name: str) -> Project:
        """One project; NotFound when it does not exist."""
        with self._read() as session:
            return self._project_info(session, _lookup.project(session, name))

    def delete_project(self, name: str) -> None:
        """Delete a project with its environments, models, versions, revisions and settings.

        Bundle blobs stay in the artifact store (another project may share them).
        """
        with self._write() as session:
            project = _lookup.project(session, name, lock=True)
            before = {
                "environments": _lookup.environment_names(session, project),
                "models": list(
                    session.execute(
                        select(ComponentRow.name).where(ComponentRow.project_id == project.id)
                    ).scalars()
                ),
            }
            session.execute(delete(ProjectRow).where(ProjectRow.id == project.id))
            self._record(session, "project.delete", f"project/{name}", before, None)
