"""``Registry``: projects, models, environments, promotion, settings and the audit log.

Every public method is one database transaction. Every change writes exactly one audit
event in that transaction; every change to an environment's contents (components,
their app config, environment- and component-level settings, environment config)
writes one new immutable revision, unless it would leave the environment as it was.
Writers that change the same environment serialize: on PostgreSQL the environment row is
locked with ``SELECT … FOR UPDATE``; SQLite writers start with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..runtime import Artifact
from . import _audit, _component_config, _lookup, _settings, _state, _tokens
from ._db import WRITE, create_engine, migrate
from ._errors import AuditBroken, Conflict, InvalidComponentConfig, InvalidInput, NotFound
from ._lookup import check_name, listing, now, tag_number
from ._models import (
    ApiToken,
    AuditEvent,
    Component,
    ComponentVersion,
    DefaultVersion,
    Environment,
    Project,
    Revision,
    Setting,
    WorkerGroup,
)
from ._state import Entry, State
from ._store import ArtifactStore, open_store
from ._tokens import ROLES
from ._types import ApiToken as ApiTokenInfo
from ._types import (
    AuditEntry,
    AuditReport,
    ComponentStatus,
    DeployedComponent,
    Diff,
    EffectiveSetting,
    EnvironmentStatus,
    Model,
    ModelVersion,
)
from ._types import Environment as EnvironmentInfo
from ._types import Project as ProjectInfo
from ._types import Revision as RevisionInfo
from ._types import WorkerGroup as WorkerGroupInfo

__all__ = ["DEFAULT_ENVIRONMENTS", "ROLES", "Registry"]

DEFAULT_ENVIRONMENTS = ("integration", "uat", "production")
USER_ENV = "SHIPYARD_USER"


@dataclass(frozen=True)
class _Scope:
    """The level a setting is read or written at, with the rows that name it."""

    level: str
    project: Project | None
    env: Environment | None
    component: Component | None

    @property
    def chain(self) -> list[tuple[str, str]]:
        """``(level, scope key)`` from this level up to global."""
        return _settings.chain(
            self.project.id if self.project else None,
            self.env.id if self.env else None,
            self.component.id if self.component else None,
        )


class Registry:
    """The model registry and control plane over one database and one artifact store.

    Build it with an engine (see ``shipyard.registry.create_engine``; the schema must be
    migrated), a store and the name of the actor recorded in revisions and audit events;
    ``Registry.open()`` does all three from the environment. Safe to share between
    threads. Errors: NotFound, Conflict, InvalidInput (InvalidSetting,
    InvalidComponentConfig), PermissionDenied, AuditBroken, StoreError, and the runtime's
    ArtifactError for a bundle that fails verification.
    """

    def __init__(self, engine: Engine, store: ArtifactStore, actor: str) -> None:
        if not actor:
            raise InvalidInput("the registry needs an actor name for its audit log")
        self.engine = engine
        self.store = store
        self.actor = actor
        self._reader = sessionmaker(engine, expire_on_commit=False)
        self._writer = sessionmaker(
            engine.execution_options(**{WRITE: True}), expire_on_commit=False
        )

    @classmethod
    def open(cls, actor: str | None = None, *, migrate_schema: bool = True) -> Registry:
        """The registry the environment describes, its schema brought up to date.

        Reads SHIPYARD_DATABASE_URL / SHIPYARD_HOME (database), SHIPYARD_ARTIFACT_STORE /
        SHIPYARD_S3_ENDPOINT_URL (store) and SHIPYARD_USER (actor, default: the login name).
        """
        engine = create_engine()
        if migrate_schema:
            migrate(engine)
        actor = actor or os.environ.get(USER_ENV) or getpass.getuser()
        return cls(engine, open_store(), actor)

    def with_actor(self, actor: str) -> Registry:
        """The same registry acting as someone else (e.g. the owner of an API token)."""
        return Registry(self.engine, self.store, actor)

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Registry:
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

    def _record(self, session: Session, action: str, obj: str, before: Any, after: Any) -> None:
        """Append the audit event of this transaction's change."""
        _audit.append(session, self.actor, action, obj, before, after)

    # -- environment changes ----------------------------------------------------------

    def _check_state(self, session: Session, env: Environment, state: State) -> None:
        """Refuse a state whose settings name a worker group that no longer exists."""
        groups = set(session.execute(select(WorkerGroup.name)).scalars())
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
        project: Project,
        env: Environment,
        action: str,
        mutate: Callable[[Revision, State], tuple[State, str]],
    ) -> RevisionInfo:
        """Lock ``env``, apply ``mutate`` to its current state, and commit a new revision.

        ``mutate(current revision, working copy)`` returns the new state and the reason
        recorded in the revision. Nothing is written when the state does not change.
        """
        _lookup.one(session, select(Environment).where(Environment.id == env.id), lock=True)
        current_revision, current = _state.read_revision(session, env)
        new, reason = mutate(current_revision, current.copy())
        new.component_settings = {
            n: v for n, v in new.component_settings.items() if n in new.entries and v
        }
        if new.identity() == current.identity():
            return _state.revision_info(project, env, current_revision, current)
        self._check_state(session, env, new)
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

    # -- projects ---------------------------------------------------------------------

    def _project_info(self, session: Session, project: Project) -> ProjectInfo:
        return ProjectInfo(
            name=project.name,
            created_at=_audit.utc_text(project.created_at),
            created_by=project.created_by,
            environments=_lookup.environment_names(session, project),
        )

    def create_project(
        self, name: str, environments: Sequence[str] = DEFAULT_ENVIRONMENTS
    ) -> ProjectInfo:
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
            if session.execute(select(Project.id).where(Project.name == name)).first():
                raise Conflict(f"project '{name}' already exists")
            project = Project(name=name, created_at=now(), created_by=self.actor)
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

    def _new_environment(
        self,
        session: Session,
        project: Project,
        name: str,
        promotes_to: Environment | None,
        challenger_of: Environment | None,
        state: State,
        reason: str,
    ) -> Environment:
        env = Environment(
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

    def list_projects(self) -> list[ProjectInfo]:
        """Every project, by name."""
        with self._read() as session:
            projects = session.execute(select(Project).order_by(Project.name)).scalars().all()
            return [self._project_info(session, p) for p in projects]

    def get_project(self, name: str) -> ProjectInfo:
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
                        select(Component.name).where(Component.project_id == project.id)
                    ).scalars()
                ),
            }
            session.execute(delete(Project).where(Project.id == project.id))
            self._record(session, "project.delete", f"project/{name}", before, None)

    # -- models -----------------------------------------------------------------------

    def _model_version(
        self,
        project: Project,
        component: Component,
        version: ComponentVersion,
        default_id: int | None,
    ) -> ModelVersion:
        return ModelVersion(
            project=project.name,
            model=component.name,
            version_id=version.number,
            tag=version.tag,
            is_default=version.id == default_id,
            bundle_name=version.bundle_name,
            bundle_version=version.bundle_version,
            digest=version.digest,
            size=version.size,
            signed=version.signed,
            app_config=copy.deepcopy(version.app_config),
            created_at=_audit.utc_text(version.created_at),
            created_by=version.created_by,
            tagged_at=_audit.utc_text(version.tagged_at) if version.tagged_at else None,
            tagged_by=version.tagged_by,
        )

    def _version_info(
        self, session: Session, project: Project, component: Component, version: ComponentVersion
    ) -> ModelVersion:
        default = _lookup.default_version(session, component, _lookup.versions(session, component))
        return self._model_version(project, component, version, default.id if default else None)

    def register_model(
        self,
        project: str,
        bundle_path: str | os.PathLike[str],
        app_config: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Verify a bundle, store it, and add it to its model as a new candidate version.

        The model is named after the bundle's pipeline and created on first registration.
        Verification checks every file, and the signature when SHIPYARD_PUBLIC_KEY is set
        (raises the runtime's TamperedArtifact / SignatureError). Registering the same
        bundle again returns its existing version; a different bundle with an already
        registered pipeline version raises Conflict. ``app_config`` becomes the version's
        default app config.
        """
        if app_config is not None and not isinstance(app_config, dict):
            raise InvalidInput("app config must be a mapping")
        artifact = Artifact(bundle_path)
        report = artifact.verify()
        metadata = artifact.metadata
        name, bundle_version = str(metadata["name"]), str(metadata["version"])
        check_name("model", name)
        # Store first: a blob without a version is harmless (content-addressed, reused on
        # retry); a version without its blob would not be.
        digest = self.store.put(bundle_path)
        size = Path(bundle_path).stat().st_size
        with self._write() as session:
            proj = _lookup.project(session, project)
            component = _lookup.one(
                session,
                select(Component).where(Component.project_id == proj.id, Component.name == name),
                lock=True,
            )
            if component is None:
                component = Component(project_id=proj.id, name=name, kind="model", created_at=now())
                session.add(component)
                session.flush()
            elif component.kind != "model":
                raise Conflict(
                    f"'{name}' in project '{project}' is an {component.kind}, not a model"
                )
            versions = _lookup.versions(session, component)
            for version in versions:
                if version.digest == digest:
                    return self._version_info(session, proj, component, version)
                if version.bundle_version == bundle_version:
                    raise Conflict(
                        f"{name} {bundle_version} is already registered as version "
                        f"{version.tag or version.number} with different content; "
                        "give the pipeline a new version"
                    )
            version = ComponentVersion(
                component_id=component.id,
                number=max((v.number for v in versions), default=0) + 1,
                tag=None,
                digest=digest,
                size=size,
                bundle_name=name,
                bundle_version=bundle_version,
                signed=bool(report.get("signed")),
                app_config=copy.deepcopy(app_config or {}),
                created_at=now(),
                created_by=self.actor,
            )
            session.add(version)
            session.flush()
            info = self._version_info(session, proj, component, version)
            self._record(
                session,
                "model.register",
                f"project/{project}/model/{name}/version/{version.number}",
                None,
                {
                    "bundle": f"{name}-{bundle_version}",
                    "digest": digest,
                    "signed": version.signed,
                    "signature_checked": bool(report.get("signature_checked")),
                },
            )
            return info

    def tag(self, project: str, model: str, version_id: int | str) -> ModelVersion:
        """Tag a candidate version with the model's next ``vN``; returns the tagged version.

        Raises Conflict when the version is already tagged, NotFound when it does not exist.
        """
        with self._write() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model, lock=True)
            version = _lookup.version(session, component, version_id)
            if version.tag is not None:
                raise Conflict(
                    f"version {version.number} of '{model}' is already tagged {version.tag}"
                )
            taken = [tag_number(v.tag) for v in _lookup.versions(session, component)]
            version.tag = f"v{max(taken, default=0) + 1}"
            version.tagged_at = now()
            version.tagged_by = self.actor
            session.flush()
            self._record(
                session,
                "model.tag",
                f"project/{project}/model/{model}/version/{version.number}",
                {"tag": None},
                {"tag": version.tag},
            )
            return self._version_info(session, proj, component, version)

    def set_default(self, project: str, model: str, version: str | int | None) -> ModelVersion:
        """Make a tagged version the model's default; None returns to "the newest tag".

        Raises Conflict for a candidate (only tagged versions can be the default).
        """
        with self._write() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model, lock=True)
            versions = _lookup.versions(session, component)
            before = _lookup.default_version(session, component, versions)
            pinned_before = session.get(DefaultVersion, component.id) is not None
            session.execute(
                delete(DefaultVersion).where(DefaultVersion.component_id == component.id)
            )
            if version is not None:
                chosen = _lookup.version(session, component, version)
                if chosen.tag is None:
                    raise Conflict(
                        f"version {chosen.number} of '{model}' is a candidate; tag it before "
                        "making it the default"
                    )
                session.add(
                    DefaultVersion(
                        component_id=component.id,
                        component_version_id=chosen.id,
                        set_at=now(),
                        set_by=self.actor,
                    )
                )
            session.flush()
            after = _lookup.default_version(session, component, versions)
            if after is None:
                raise NotFound(f"model '{model}' has no tagged version to be its default")
            self._record(
                session,
                "model.set_default",
                f"project/{project}/model/{model}",
                {"default": before.tag if before else None, "pinned": pinned_before},
                {"default": after.tag, "pinned": version is not None},
            )
            return self._model_version(proj, component, after, after.id)

    def list_models(self, project: str) -> list[Model]:
        """The project's models with their default version and version counts."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            components = session.execute(
                select(Component)
                .where(Component.project_id == proj.id, Component.kind == "model")
                .order_by(Component.name)
            ).scalars()
            models = []
            for component in components:
                versions = _lookup.versions(session, component)
                default = _lookup.default_version(session, component, versions)
                models.append(
                    Model(
                        project=project,
                        name=component.name,
                        kind=component.kind,
                        default_version=default.tag if default else None,
                        versions=len(versions),
                        candidates=sum(v.tag is None for v in versions),
                        latest_bundle_version=versions[-1].bundle_version if versions else None,
                    )
                )
            return models

    def versions(self, project: str, model: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model)
            versions = _lookup.versions(session, component)
            default = _lookup.default_version(session, component, versions)
            default_id = default.id if default else None
            return [self._model_version(proj, component, v, default_id) for v in versions]

    def get_version(
        self, project: str, model: str, version: str | int | None = None
    ) -> ModelVersion:
        """One version by tag or version id (the default version when None)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model)
            return self._version_info(
                session, proj, component, _lookup.version(session, component, version)
            )

    def fetch_bundle(
        self,
        project: str,
        model: str,
        version: str | int | None,
        folder: str | os.PathLike[str],
    ) -> Path:
        """Copy a version's bundle from the store into ``folder`` as ``NAME-VERSION.tar.gz``.

        The copy is verified against the stored sha256 (StoreError otherwise).
        """
        found = self.get_version(project, model, version)
        target = Path(folder) / f"{found.bundle_name}-{found.bundle_version}.tar.gz"
        return self.store.fetch(found.digest, target)

    # -- environments -----------------------------------------------------------------

    def _environment_info(
        self, session: Session, project: Project, env: Environment
    ) -> EnvironmentInfo:
        names = _lookup.environment_names_by_id(session, project)
        revision = session.execute(
            select(func.max(Revision.number)).where(Revision.environment_id == env.id)
        ).scalar()
        return EnvironmentInfo(
            project=project.name,
            name=env.name,
            promotes_to=names.get(env.promotes_to_id) if env.promotes_to_id else None,
            challenger_of=names.get(env.challenger_of_id) if env.challenger_of_id else None,
            is_challenger=env.is_challenger,
            revision=revision or 0,
            created_at=_audit.utc_text(env.created_at),
            created_by=env.created_by,
        )

    def list_environments(self, project: str) -> list[EnvironmentInfo]:
        """The project's environments, in creation order."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            envs = session.execute(
                select(Environment)
                .where(Environment.project_id == proj.id)
                .order_by(Environment.id)
            ).scalars()
            return [self._environment_info(session, proj, e) for e in envs]

    def get_environment(self, project: str, name: str) -> EnvironmentInfo:
        """One environment; NotFound when it does not exist."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            return self._environment_info(session, proj, _lookup.environment(session, proj, name))

    def _promotion_target(
        self, session: Session, project: Project, env_name: str, target_name: str | None
    ) -> Environment | None:
        """The environment ``env_name`` may promote to; refuses challengers and cycles."""
        if target_name is None:
            return None
        target = _lookup.environment(session, project, target_name)
        if target.is_challenger:
            raise Conflict(
                f"'{env_name}' cannot promote to '{target_name}': nothing may promote into a "
                "challenger"
            )
        if target.name == env_name:
            raise Conflict(f"refused: {env_name} -> {env_name} would be a cycle")
        chain = [env_name, target.name]
        step: Environment | None = target
        while step is not None and step.promotes_to_id is not None:
            step = session.get(Environment, step.promotes_to_id)
            assert step is not None
            chain.append(step.name)
            if step.name == env_name:
                raise Conflict(f"refused: {' -> '.join(chain)} would be a cycle")
        return target

    def create_environment(
        self, project: str, name: str, promotes_to: str | None = None
    ) -> EnvironmentInfo:
        """Add an empty environment (revision 1) that promotes to ``promotes_to`` (or nowhere).

        Raises Conflict when the name is taken or ``promotes_to`` is a challenger.
        """
        check_name("environment", name)
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            if name in _lookup.environment_names(session, proj):
                raise Conflict(f"project '{project}' already has an environment '{name}'")
            target = self._promotion_target(session, proj, name, promotes_to)
            env = self._new_environment(
                session, proj, name, target, None, State(), "create environment"
            )
            self._record(
                session,
                "environment.create",
                f"project/{project}/environment/{name}",
                None,
                {"promotes_to": promotes_to},
            )
            return self._environment_info(session, proj, env)

    def set_promotes_to(self, project: str, name: str, promotes_to: str | None) -> EnvironmentInfo:
        """Point an environment at another one to promote to (None: the end of the chain).

        Raises Conflict for a cycle, a challenger target, or when ``name`` is a challenger
        (a challenger always promotes into the environment it was cloned from).
        """
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            env = _lookup.environment(session, proj, name, lock=True)
            if env.is_challenger:
                raise Conflict(f"'{name}' is a challenger: it always promotes into its source")
            names = _lookup.environment_names_by_id(session, proj)
            before = names.get(env.promotes_to_id) if env.promotes_to_id else None
            target = self._promotion_target(session, proj, name, promotes_to)
            env.promotes_to_id = target.id if target else None
            session.flush()
            self._record(
                session,
                "environment.set_promotes_to",
                f"project/{project}/environment/{name}",
                {"promotes_to": before},
                {"promotes_to": promotes_to},
            )
            return self._environment_info(session, proj, env)

    def delete_environment(self, project: str, name: str) -> None:
        """Delete an environment and its revisions.

        Raises Conflict listing the environments that promote to it or are its challengers.
        """
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            env = _lookup.environment(session, proj, name, lock=True)
            dependants = (
                session.execute(
                    select(Environment)
                    .where(
                        (Environment.promotes_to_id == env.id)
                        | (Environment.challenger_of_id == env.id)
                    )
                    .order_by(Environment.id)
                )
                .scalars()
                .all()
            )
            if dependants:
                listed = ", ".join(
                    f"{d.name} (challenger of it)"
                    if d.challenger_of_id == env.id
                    else f"{d.name} (promotes to it)"
                    for d in dependants
                )
                raise Conflict(
                    f"environment '{name}' is needed by: {listed}; delete or re-point those first"
                )
            revision, state = _state.read_revision(session, env)
            before = state.summary(revision.number)
            session.delete(env)
            session.flush()
            self._record(
                session, "environment.delete", f"project/{project}/environment/{name}", before, None
            )

    def create_challenger(self, project: str, name: str, from_env: str) -> EnvironmentInfo:
        """Clone ``from_env``'s components and environment config into a new challenger.

        The challenger promotes back into ``from_env``; its settings start inherited.
        Raises Conflict when the name is taken.
        """
        check_name("environment", name)
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            if name in _lookup.environment_names(session, proj):
                raise Conflict(f"project '{project}' already has an environment '{name}'")
            source = _lookup.environment(session, proj, from_env)
            if source.is_challenger:
                raise Conflict(
                    f"'{from_env}' is a challenger: a challenger of it would promote into a "
                    "challenger, which nothing may do"
                )
            revision, state = _state.read_revision(session, source)
            clone = State(entries=state.copy().entries, config=copy.deepcopy(state.config))
            env = self._new_environment(
                session,
                proj,
                name,
                source,
                source,
                clone,
                f"challenger of {from_env} (its revision {revision.number})",
            )
            self._record(
                session,
                "challenger.create",
                f"project/{project}/environment/{name}",
                None,
                clone.summary(1) | {"challenger_of": from_env},
            )
            return self._environment_info(session, proj, env)

    # -- components and configs -------------------------------------------------------

    def add_component(
        self,
        project: str,
        env: str,
        name: str,
        version: str | int | None = None,
        app_config: dict[str, Any] | None = None,
    ) -> RevisionInfo:
        """Deploy a model version (default version when None) into an environment.

        Replaces the version already there. ``app_config`` defaults to the version's own.
        Returns the environment's new revision.
        """
        if app_config is not None and not isinstance(app_config, dict):
            raise InvalidInput("app config must be a mapping")
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            component = _lookup.component(session, proj, name)
            chosen = _lookup.version(session, component, version)

            def mutate(_: Revision, state: State) -> tuple[State, str]:
                config = app_config if app_config is not None else chosen.app_config
                state.entries[name] = Entry(component, chosen, copy.deepcopy(config))
                label = chosen.tag or f"candidate {chosen.number}"
                return state, f"add {name} {label}"

            return self._change(session, proj, environment, "component.add", mutate)

    def remove_component(self, project: str, env: str, name: str) -> RevisionInfo:
        """Remove a component (and its component-level settings) from an environment."""
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)

            def mutate(_: Revision, state: State) -> tuple[State, str]:
                if name not in state.entries:
                    raise NotFound(
                        f"environment '{env}' has no component '{name}' "
                        f"(components: {listing(sorted(state.entries))})"
                    )
                del state.entries[name]
                return state, f"remove {name}"

            return self._change(session, proj, environment, "component.remove", mutate)

    def list_components(self, project: str, env: str) -> list[DeployedComponent]:
        """The components an environment holds now, by name."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            _, state = _state.read_revision(session, _lookup.environment(session, proj, env))
            return [e.deployed() for _, e in sorted(state.entries.items())]

    def save_component_config(self, project: str, env: str) -> str:
        """The environment's component set as YAML text (see ``apply_component_config``)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            revision, state = _state.read_revision(session, _lookup.environment(session, proj, env))
            components = [e.deployed() for e in state.entries.values()]
            return _component_config.dump(project, env, revision.number, components)

    def apply_component_config(self, project: str, env: str, text: str) -> RevisionInfo:
        """Make an environment hold exactly the components of a component config, in one revision.

        Everything is checked first; InvalidComponentConfig lists every problem and nothing
        changes. Components not in the file are removed; settings and environment config
        stay. Applying what the environment already holds makes no new revision.
        """
        specs, problems = _component_config.parse(text)
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            entries: dict[str, Entry] = {}
            for spec in specs:
                try:
                    component = _lookup.component(session, proj, spec.name)
                    chosen = _lookup.version(session, component, spec.version)
                except (NotFound, InvalidInput) as exc:
                    problems.append(f"{spec.name}: {exc}")
                    continue
                if spec.kind is not None and spec.kind != component.kind:
                    problems.append(f"{spec.name}: is a {component.kind}, not a {spec.kind}")
                if spec.digest is not None and spec.digest != chosen.digest:
                    problems.append(
                        f"{spec.name}: version {spec.version} here has digest "
                        f"{chosen.digest[:12]}…, the file says {spec.digest[:12]}…"
                    )
                config = spec.app_config if spec.app_config is not None else chosen.app_config
                entries[spec.name] = Entry(component, chosen, copy.deepcopy(config))
            if problems:
                raise InvalidComponentConfig(problems)

            def mutate(_: Revision, state: State) -> tuple[State, str]:
                state.entries = entries
                return state, f"apply component config ({len(entries)} components)"

            return self._change(session, proj, environment, "component_config.apply", mutate)

    def get_environment_config(self, project: str, env: str) -> dict[str, Any]:
        """The environment config (free-form; bound to the environment, never promoted)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            _, state = _state.read_revision(session, _lookup.environment(session, proj, env))
            return state.config

    def set_environment_config(
        self, project: str, env: str, config: dict[str, Any]
    ) -> RevisionInfo:
        """Replace the environment config with ``config`` (a JSON object); a new revision."""
        if not isinstance(config, dict):
            raise InvalidInput("environment config must be a mapping")
        try:
            config = _audit.as_json_data(config)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"environment config is not JSON data ({exc})") from None
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)

            def mutate(_: Revision, state: State) -> tuple[State, str]:
                state.config = config
                return state, "set environment config"

            return self._change(session, proj, environment, "environment_config.set", mutate)

    # -- settings ---------------------------------------------------------------------

    def _scope(
        self,
        session: Session,
        project: str | None,
        env: str | None,
        component: str | None,
    ) -> _Scope:
        """The level named by the most specific of ``project``, ``env``, ``component``."""
        if project is None and (env is not None or component is not None):
            raise InvalidInput("an environment or component setting needs its project")
        if component is not None and env is None:
            raise InvalidInput("a component setting needs its environment")
        if project is None:
            return _Scope("global", None, None, None)
        proj = _lookup.project(session, project)
        if env is None:
            return _Scope("project", proj, None, None)
        environment = _lookup.environment(session, proj, env)
        if component is None:
            return _Scope("environment", proj, environment, None)
        _, state = _state.read_revision(session, environment)
        if component not in state.entries:
            raise NotFound(
                f"environment '{env}' has no component '{component}' "
                f"(components: {listing(sorted(state.entries))})"
            )
        return _Scope("component", proj, environment, state.entries[component].component)

    def get_setting(
        self,
        key: str,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> EffectiveSetting:
        """A setting's effective value at a level, and the level it comes from.

        The level is the most specific one named: global (no project), project,
        environment, or component (a component deployed in ``env``).
        """
        _settings.check_key(key)
        with self._read() as session:
            scope = self._scope(session, project, env, component)
            values = _settings.values_at(session, [k for _, k in scope.chain])
            return _settings.effective(key, scope.chain, values)

    def get_settings(
        self, project: str | None = None, env: str | None = None, component: str | None = None
    ) -> list[EffectiveSetting]:
        """Every setting's effective value at a level (see ``get_setting``)."""
        with self._read() as session:
            scope = self._scope(session, project, env, component)
            values = _settings.values_at(session, [k for _, k in scope.chain])
            return [_settings.effective(k, scope.chain, values) for k in _settings.KEYS]

    def set_setting(
        self,
        key: str,
        value: Any,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> EffectiveSetting:
        """Set a setting at one level (see ``get_setting``); text values are parsed.

        Raises InvalidSetting with the reason for an unknown key or a bad value.
        Environment and component levels are part of the environment: setting them makes
        a new revision.
        """
        return self._put_setting(key, value, project, env, component)

    def inherit_setting(
        self,
        key: str,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> EffectiveSetting:
        """Clear a setting at one level so it inherits again; returns the value now in effect."""
        return self._put_setting(key, None, project, env, component, clear=True)

    def _put_setting(
        self,
        key: str,
        value: Any,
        project: str | None,
        env: str | None,
        component: str | None,
        clear: bool = False,
    ) -> EffectiveSetting:
        _settings.check_key(key)
        with self._write() as session:
            scope = self._scope(session, project, env, component)
            if not clear:
                tags = (
                    [v.tag for v in _lookup.versions(session, scope.component) if v.tag]
                    if scope.component is not None
                    else []
                )
                value = _settings.validate(
                    key,
                    value,
                    level=scope.level,
                    worker_groups=set(session.execute(select(WorkerGroup.name)).scalars()),
                    tags=tags,
                )
            action = "setting.inherit" if clear else "setting.set"
            if scope.env is not None:
                self._put_environment_setting(session, scope, key, value, action)
            else:
                self._put_global_setting(session, scope, key, value, action)
            values = _settings.values_at(session, [k for _, k in scope.chain])
            return _settings.effective(key, scope.chain, values)

    def _put_environment_setting(
        self, session: Session, scope: _Scope, key: str, value: Any, action: str
    ) -> None:
        assert scope.project is not None and scope.env is not None
        name = scope.component.name if scope.component is not None else None

        def mutate(_: Revision, state: State) -> tuple[State, str]:
            values = state.component_settings.setdefault(name, {}) if name else state.env_settings
            where = f"component {name}" if name else "environment"
            if action == "setting.inherit":
                values.pop(key, None)
                return state, f"{where}: {key} inherited"
            values[key] = value
            return state, f"{where}: {key} = {json.dumps(value)}"

        self._change(session, scope.project, scope.env, action, mutate)

    def _put_global_setting(
        self, session: Session, scope: _Scope, key: str, value: Any, action: str
    ) -> None:
        where = scope.chain[0][1]
        row = _lookup.one(
            session,
            select(Setting).where(Setting.scope_key == where, Setting.key == key),
            lock=True,
        )
        before = row.value if row is not None else None
        if action == "setting.inherit":
            if row is None:
                return
            session.delete(row)
        elif row is None:
            session.add(
                Setting(
                    scope=scope.level,
                    scope_key=where,
                    project_id=scope.project.id if scope.project else None,
                    key=key,
                    value=value,
                    updated_at=now(),
                    updated_by=self.actor,
                )
            )
        elif row.value == value:
            return
        else:
            row.value, row.updated_at, row.updated_by = value, now(), self.actor
        session.flush()
        obj = f"project/{scope.project.name}" if scope.project else "global"
        after = None if action == "setting.inherit" else value
        self._record(session, action, f"{obj}/setting/{key}", {key: before}, {key: after})

    # -- worker groups ----------------------------------------------------------------

    @staticmethod
    def _worker_group_info(group: WorkerGroup) -> WorkerGroupInfo:
        return WorkerGroupInfo(
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

    def _worker_group(self, session: Session, name: str, lock: bool = False) -> WorkerGroup:
        found = _lookup.one(session, select(WorkerGroup).where(WorkerGroup.name == name), lock)
        if found is None:
            names = session.execute(select(WorkerGroup.name).order_by(WorkerGroup.name)).scalars()
            raise NotFound(
                f"worker group '{name}' does not exist (worker groups: {listing(list(names))})"
            )
        return found

    def create_worker_group(self, name: str, machine_size: str, count: int = 1) -> WorkerGroupInfo:
        """Define a pool of ``count`` machines of ``machine_size``; Conflict if the name exists."""
        check_name("worker group", name)
        self._check_pool(machine_size, count)
        with self._write() as session:
            if session.execute(select(WorkerGroup.id).where(WorkerGroup.name == name)).first():
                raise Conflict(f"worker group '{name}' already exists")
            group = WorkerGroup(
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
    ) -> WorkerGroupInfo:
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

    def list_worker_groups(self) -> list[WorkerGroupInfo]:
        """Every worker group, by name."""
        with self._read() as session:
            groups = session.execute(select(WorkerGroup).order_by(WorkerGroup.name)).scalars()
            return [self._worker_group_info(g) for g in groups]

    def delete_worker_group(self, name: str) -> None:
        """Delete a worker group; Conflict listing the levels whose ``worker_group`` names it."""
        with self._write() as session:
            group = self._worker_group(session, name, lock=True)
            users = [
                row
                for row in session.execute(
                    select(Setting).where(Setting.key == "worker_group")
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
    def _describe_scope(session: Session, row: Setting) -> str:
        names = [
            found.name
            for found in (
                session.get(Project, row.project_id) if row.project_id else None,
                session.get(Environment, row.environment_id) if row.environment_id else None,
                session.get(Component, row.component_id) if row.component_id else None,
            )
            if found is not None
        ]
        return " ".join([row.scope, "/".join(names)]).strip()

    # -- promotion and history --------------------------------------------------------

    def promote(self, project: str, env: str) -> RevisionInfo:
        """Copy ``env``'s whole component set (versions and app config) into its ``promotes_to``.

        One transaction, one new revision of the target; the target keeps its own
        settings and environment config. Concurrent promotions into the same environment
        run one after the other. Raises Conflict when ``env`` promotes nowhere, promotes
        into a challenger, or holds no components.
        """
        with self._write() as session:
            proj = _lookup.project(session, project)
            source = _lookup.environment(session, proj, env)
            if source.promotes_to_id is None:
                raise Conflict(f"environment '{env}' does not promote to another environment")
            target = session.get(Environment, source.promotes_to_id)
            assert target is not None
            if target.is_challenger:  # refused when set; checked again for older databases
                raise Conflict(f"'{env}' cannot promote into challenger '{target.name}'")
            source_revision, source_state = _state.read_revision(session, source)
            if not source_state.entries:
                raise Conflict(f"nothing to promote: environment '{env}' holds no components")

            def mutate(_: Revision, state: State) -> tuple[State, str]:
                state.entries = source_state.copy().entries
                return state, f"promote from {env} (its revision {source_revision.number})"

            return self._change(session, proj, target, "environment.promote", mutate)

    def rollback(self, project: str, env: str, to: int | None = None) -> RevisionInfo:
        """Make a new revision equal to revision ``to`` (default: the one before the current).

        Restores components, app config, environment- and component-level settings and
        environment config. Raises NotFound for an unknown revision, Conflict when there
        is no earlier revision or a restored setting names a deleted worker group.
        """
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)

            def mutate(current: Revision, _: State) -> tuple[State, str]:
                number = current.number - 1 if to is None else to
                if number < 1:
                    raise Conflict(f"environment '{env}' has no revision before {current.number}")
                return _state.read_revision(session, environment, number)[1], (
                    f"rollback to revision {number}"
                )

            return self._change(session, proj, environment, "environment.rollback", mutate)

    def history(self, project: str, env: str) -> list[RevisionInfo]:
        """Every revision of an environment, newest first."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            revisions = (
                session.execute(
                    select(Revision)
                    .where(Revision.environment_id == environment.id)
                    .order_by(Revision.number.desc())
                )
                .scalars()
                .all()
            )
            entries = _state.entries(session, [r.id for r in revisions])
            return [
                _state.revision_info(proj, environment, r, _state.state_of(r, entries[r.id]))
                for r in revisions
            ]

    def get_revision(self, project: str, env: str, number: int | None = None) -> RevisionInfo:
        """One revision of an environment (the current one when ``number`` is None)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            revision, state = _state.read_revision(session, environment, number)
            return _state.revision_info(proj, environment, revision, state)

    def status(self, project: str, env: str) -> EnvironmentStatus:
        """What an environment runs: revision, components with versions, effective settings."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            info = self._environment_info(session, proj, environment)
            revision, state = _state.read_revision(session, environment)
            env_chain = _settings.chain(proj.id, environment.id)
            chains = {
                name: _settings.chain(proj.id, environment.id, e.component.id)
                for name, e in state.entries.items()
            }
            values = _settings.values_at(
                session, [k for levels in [env_chain, *chains.values()] for _, k in levels]
            )
            components = [
                ComponentStatus(
                    **vars(entry.deployed()),
                    settings={
                        k: _settings.effective(k, chains[name], values) for k in _settings.KEYS
                    },
                )
                for name, entry in sorted(state.entries.items())
            ]
            return EnvironmentStatus(
                project=project,
                environment=env,
                promotes_to=info.promotes_to,
                challenger_of=info.challenger_of,
                revision=revision.number,
                updated_at=_audit.utc_text(revision.created_at),
                updated_by=revision.actor,
                components=components,
                settings={k: _settings.effective(k, env_chain, values) for k in _settings.KEYS},
                config=state.config,
            )

    def diff(self, project: str, a: str, b: str) -> Diff:
        """How ``b`` differs from ``a``, each an environment (``uat``) or a revision (``uat@3``)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            states = []
            for ref in (a, b):
                name, _, number = ref.partition("@")
                if number and not number.isdigit():
                    raise InvalidInput(f"'{ref}' is neither ENVIRONMENT nor ENVIRONMENT@REVISION")
                environment = _lookup.environment(session, proj, name)
                _, state = _state.read_revision(
                    session, environment, int(number) if number else None
                )
                states.append(state)
        return _state.diff(a, b, states[0], states[1])

    # -- audit ------------------------------------------------------------------------

    def audit_list(
        self, limit: int | None = None, object_prefix: str | None = None
    ) -> list[AuditEntry]:
        """Audit events, newest first; ``object_prefix`` such as ``project/demo`` filters them."""
        with self._read() as session:
            query = select(AuditEvent).order_by(AuditEvent.id.desc())
            if object_prefix:
                query = query.where(AuditEvent.object.startswith(object_prefix, autoescape=True))
            if limit is not None:
                query = query.limit(limit)
            return [_audit.entry(e) for e in session.execute(query).scalars()]

    def audit_verify(self, raise_error: bool = True) -> AuditReport:
        """Check the audit log's hash chain from the first event to the head.

        Raises AuditBroken naming the first broken event (or, with ``raise_error=False``,
        returns a report with ``ok=False``, ``broken_event`` and ``reason``).
        """
        with self._read() as session:
            report = _audit.verify(session)
        if not report.ok and raise_error:
            assert report.broken_event is not None and report.reason is not None
            raise AuditBroken(report.broken_event, report.reason)
        return report

    # -- API tokens -------------------------------------------------------------------

    def create_token(self, name: str, role: str) -> tuple[ApiTokenInfo, str]:
        """Create an API token; returns its record and the token text, shown only now.

        ``role`` is viewer, deployer or admin. Only a sha256 of the secret is stored.
        """
        check_name("token", name)
        _tokens.check_role(role)
        secret, secret_hash = _tokens.new_secret()
        with self._write() as session:
            token = ApiToken(
                name=name,
                role=role,
                secret_hash=secret_hash,
                created_at=now(),
                created_by=self.actor,
            )
            session.add(token)
            session.flush()
            self._record(
                session, "token.create", f"token/{token.id}", None, {"name": name, "role": role}
            )
            return _tokens.info(token), _tokens.token_text(token, secret)

    def verify_token(self, token: str, role: str = "viewer") -> ApiTokenInfo:
        """The token's record if it is valid and its role is at least ``role``.

        Compares in constant time. Raises PermissionDenied (the message never echoes the
        token) when it is malformed, unknown, revoked, or its role is too low.
        """
        _tokens.check_role(role)
        with self._read() as session:
            found = _tokens.find(session, token)
        _tokens.require(found, role)
        return _tokens.info(found)

    def list_tokens(self) -> list[ApiTokenInfo]:
        """Every API token's public record (never the secret)."""
        with self._read() as session:
            tokens = session.execute(select(ApiToken).order_by(ApiToken.id)).scalars()
            return [_tokens.info(t) for t in tokens]

    def revoke_token(self, token_id: int) -> ApiTokenInfo:
        """Revoke a token: it stops verifying at once. NotFound for an unknown id."""
        with self._write() as session:
            token = session.get(ApiToken, token_id, with_for_update=True)
            if token is None:
                raise NotFound(f"API token {token_id} does not exist")
            if token.revoked_at is None:
                token.revoked_at = now()
                session.flush()
                self._record(
                    session,
                    "token.revoke",
                    f"token/{token.id}",
                    {"revoked": False},
                    {"revoked": True},
                )
            return _tokens.info(token)
