"""``RegistryCore``: what every concept of the registry shares: transactions, audit, revisions.

Every public method is one database transaction. Every change writes exactly one audit
event in that transaction; every change to an environment's contents (components,
their app config, environment- and component-level settings, environment config)
writes one new immutable revision, unless it would leave the environment as it was.
Writers that change the same environment serialize: on PostgreSQL the environment row is
locked with ``SELECT … FOR UPDATE``; SQLite writers start with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import Conflict, InvalidInput, PermissionDenied, ShipyardError
from . import _audit, _lookup, _signing, _state
from ._anchors import Witness, configured_witness
from ._db import WRITE, create_engine, migrate
from ._lookup import now
from ._rows import (
    EnvironmentRow,
    ProjectRow,
    RevisionRow,
    WorkerGroupRow,
)
from ._state import State
from ._store import ArtifactStore, open_store
from ._tokens import ROLES
from ._types import AuditAnchor, Environment, Revision

DEFAULT_ENVIRONMENTS = ("integration", "uat", "production")
logger = logging.getLogger("shipyard.registry")
# Changes that put versions into an environment by hand. Into an environment that another
# promotes to, only promotion (or an admin) may do that: a deployer's way into production
# is through the chain, where each step is reviewed, not around it.
DIRECT_WRITES = frozenset(
    {"component.add", "component.remove", "component_config.apply", "environment_config.set"}
)
USER_ENV = "SHIPYARD_USER"


class RegistryCore:
    """The base of every concept's mixin: engine, store, actor and role, and the
    transaction, audit and revision helpers they share (``Registry`` composes them)."""

    def __init__(
        self,
        engine: Engine,
        store: ArtifactStore,
        actor: str,
        role: str = "admin",
        *,
        witness: Witness | None = None,
    ) -> None:
        if not actor:
            raise InvalidInput("the registry needs an actor name for its audit log")
        if role not in ROLES:
            raise InvalidInput(f"role '{role}' is not one of {', '.join(ROLES)}")
        self.engine = engine
        self.store = store
        self.actor = actor
        # What the actor may do. The embedded registry acts for whoever owns its
        # database (admin); the HTTP API passes the role of the request's token, so a
        # rule that depends on a value (a policy setting, the global level) holds there too.
        self.role = role
        # Where the audit head is anchored after each promotion and rollback (see _anchors).
        self.witness = witness
        self._reader = sessionmaker(engine, expire_on_commit=False)
        self._writer = sessionmaker(
            engine.execution_options(**{WRITE: True}), expire_on_commit=False
        )

    @classmethod
    def open(cls, actor: str | None = None, *, migrate_schema: bool = True) -> Self:
        """The registry the environment describes, its schema brought up to date.

        Reads SHIPYARD_DATABASE_URL / SHIPYARD_HOME (database), SHIPYARD_ARTIFACT_STORE /
        SHIPYARD_S3_ENDPOINT_URL (store) and SHIPYARD_USER (actor, default: the login name).
        """
        engine = create_engine()
        if migrate_schema:
            migrate(engine)
        actor = actor or os.environ.get(USER_ENV) or getpass.getuser()
        return cls(engine, open_store(), actor, witness=configured_witness())

    def with_actor(self, actor: str, role: str | None = None) -> Self:
        """The same registry acting as someone else (e.g. the owner of an API token).

        ``role`` limits what the new actor may do (default: this registry's role).
        """
        return type(self)(self.engine, self.store, actor, role or self.role, witness=self.witness)

    def _require_role(self, role: str, what: str) -> None:
        """Raise PermissionDenied unless this registry's actor has ``role`` or above."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise PermissionDenied(f"{what} needs the {role} role; {self.actor} is a {self.role}")

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string()
        return f"Registry({url!r}, {self.store!r}, actor={self.actor!r})"

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with self._writer() as session, session.begin():
                yield session
        except IntegrityError as exc:
            # A unique key taken by a concurrent writer between our check and our insert.
            raise Conflict(f"the registry changed while this ran; try again ({exc.orig})") from None

    def _anchor(self) -> AuditAnchor | None:
        """Write the audit head to the configured witness, if any; returns what was written.

        Called after a promotion or rollback has committed: a witness that cannot be
        written is logged, never turned into a failure of the change already made.
        """
        if self.witness is None:
            return None
        with self._read() as session:
            anchor = _audit.head(session)
        try:
            self.witness.write(anchor)
        except ShipyardError as exc:
            logger.error("audit anchor to %s failed: %s", self.witness.location, exc)
            return None
        return anchor

    def _record(self, session: Session, action: str, obj: str, before: Any, after: Any) -> None:
        """Append the audit event of this transaction's change."""
        _audit.append(session, self.actor, action, obj, before, after)

    # -- environment changes ----------------------------------------------------------

    def _check_state(self, session: Session, env: EnvironmentRow, state: State) -> None:
        """Refuse a state whose settings name a worker group that no longer exists."""
        groups = set(session.execute(select(WorkerGroupRow.name)).scalars())
        named = [("environment", state.env_settings)] + [
            (f"component '{n}'", v) for n, v in state.component_settings.items()
        ]
        for where, values in named:
            group = values.get("worker_group")
            if group is not None and group not in groups:
                raise Conflict(
                    f"environment '{env.name}': {where} would use worker group '{group}', "
                    "which no longer exists; create it first"
                )

    def _change(
        self,
        session: Session,
        project: ProjectRow,
        env: EnvironmentRow,
        action: str,
        mutate: Callable[[RevisionRow, State], tuple[State, str]],
    ) -> Revision:
        """Lock ``env``, apply ``mutate`` to its current state, and commit a new revision.

        ``mutate(current revision, working copy)`` returns the new state and the reason
        recorded in the revision. Nothing is written when the state does not change.
        """
        if action in DIRECT_WRITES and self.role != "admin":
            feeders = session.execute(
                select(EnvironmentRow.name).where(
                    EnvironmentRow.promotes_to_id == env.id,
                    EnvironmentRow.challenger_of_id.is_(None),
                )
            ).scalars()
            feeder = next(iter(feeders), None)
            if feeder is not None:
                raise PermissionDenied(
                    f"environment '{env.name}' is filled by promotion from '{feeder}': "
                    f"changing its components directly needs the admin role ({self.actor} "
                    f"is a {self.role}); promote {feeder} instead"
                )
        _lookup.one(session, select(EnvironmentRow).where(EnvironmentRow.id == env.id), lock=True)
        current_revision, current = _state.read_revision(session, env)
        new, reason = mutate(current_revision, current.copy())
        new.component_settings = {
            n: v for n, v in new.component_settings.items() if n in new.entries and v
        }
        if new.identity() == current.identity():
            return _state.revision_info(project, env, current_revision, current)
        self._check_state(session, env, new)
        _signing.check_policy(session, self.store, project, env, current, new)
        revision = _state.write_revision(
            session, env, current_revision.number + 1, new, action, reason, self.actor
        )
        self._record(
            session,
            action,
            f"project/{project.name}/environment/{env.name}",
            current.summary(current_revision.number),
            new.summary(revision.number),
        )
        return _state.revision_info(project, env, revision, new)

    def _new_environment(
        self,
        session: Session,
        project: ProjectRow,
        name: str,
        promotes_to: EnvironmentRow | None,
        challenger_of: EnvironmentRow | None,
        state: State,
        reason: str,
    ) -> EnvironmentRow:
        env = EnvironmentRow(
            project_id=project.id,
            name=name,
            promotes_to_id=promotes_to.id if promotes_to else None,
            challenger_of_id=challenger_of.id if challenger_of else None,
            created_at=now(),
            created_by=self.actor,
        )
        session.add(env)
        session.flush()
        _state.write_revision(session, env, 1, state, "environment.create", reason, self.actor)
        return env

    def _environment_info(
        self, session: Session, project: ProjectRow, env: EnvironmentRow
    ) -> Environment:
        names = _lookup.environment_names_by_id(session, project)
        revision = session.execute(
            select(func.max(RevisionRow.number)).where(RevisionRow.environment_id == env.id)
        ).scalar()
        return Environment(
            project=project.name,
            name=env.name,
            promotes_to=names.get(env.promotes_to_id) if env.promotes_to_id else None,
            challenger_of=names.get(env.challenger_of_id) if env.challenger_of_id else None,
            is_challenger=env.is_challenger,
            revision=revision or 0,
            created_at=_audit.utc_text(env.created_at),
            created_by=env.created_by,
        )
