"""The registry's tables as SQLAlchemy 2 ORM classes.

The schema itself is created by the Alembic migrations in ``migrations/versions``;
these classes must match them (a test compares the two on both backends). Rows of
``component_versions`` (apart from their tag, given once), ``revisions`` and
``revision_entries`` are never updated: the code has no path that does it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAME = 63  # length of project, environment, component and worker-group names

# Named constraints let a later migration alter them on SQLite (batch mode recreates the
# table and needs the names). The migrations get this convention through env.py's
# target_metadata, so keep it stable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; JSON documents map to the portable ``JSON`` type."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class ProjectRow(Base):
    """A logical grouping for one deployment: its models, apps and environments."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))


class EnvironmentRow(Base):
    """A slot in a project's promotion chain; its contents live in its latest revision."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME))
    promotes_to_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    challenger_of_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))

    @property
    def is_challenger(self) -> bool:
        """True for a challenger: cloned from another environment, it promotes back into it."""
        return self.challenger_of_id is not None


class ComponentRow(Base):
    """Something deployable into an environment: a ``model`` now, an ``app`` later."""

    __tablename__ = "components"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ComponentVersionRow(Base):
    """One immutable version of a component: a candidate until it is given a tag ``vN``."""

    __tablename__ = "component_versions"
    __table_args__ = (
        UniqueConstraint("component_id", "number"),
        UniqueConstraint("component_id", "tag"),
        UniqueConstraint("component_id", "digest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"))
    number: Mapped[int]
    tag: Mapped[str | None] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    bundle_name: Mapped[str] = mapped_column(String(255))
    bundle_version: Mapped[str] = mapped_column(String(64))
    signed: Mapped[bool]
    # The trusted key whose signature held at registration (None: unsigned, or no trusted
    # key matched then; the policy check looks at the stored bundle again in that case).
    signer_key_id: Mapped[str | None] = mapped_column(String(16))
    app_config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    tagged_at: Mapped[datetime | None]
    tagged_by: Mapped[str | None] = mapped_column(String(255))
    # The bundle's model card completed by the one given at registration (None before 0008).
    model_card: Mapped[dict[str, Any] | None]


class DefaultVersionRow(Base):
    """A default version chosen with set-default; without a row the newest tag is the default."""

    __tablename__ = "default_versions"

    component_id: Mapped[int] = mapped_column(
        ForeignKey("components.id", ondelete="CASCADE"), primary_key=True
    )
    component_version_id: Mapped[int] = mapped_column(
        ForeignKey("component_versions.id", ondelete="CASCADE")
    )
    set_at: Mapped[datetime]
    set_by: Mapped[str] = mapped_column(String(255))


class RevisionRow(Base):
    """An immutable snapshot of an environment: components, settings and environment config."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("environment_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    number: Mapped[int]
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any]]


class RevisionEntryRow(Base):
    """One component of a revision: the version deployed and its app config."""

    __tablename__ = "revision_entries"
    __table_args__ = (UniqueConstraint("revision_id", "component_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id", ondelete="CASCADE"))
    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"))
    component_version_id: Mapped[int] = mapped_column(
        ForeignKey("component_versions.id", ondelete="CASCADE")
    )
    app_config: Mapped[dict[str, Any]]


class SettingRow(Base):
    """A setting set at one level; ``scope_key`` ("global", "p3", "e7", "e7/c2") makes it unique.

    Environment- and component-level rows mirror the environment's latest revision and
    are written only together with it.
    """

    __tablename__ = "settings"
    __table_args__ = (UniqueConstraint("scope_key", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    scope_key: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE")
    )
    component_id: Mapped[int | None] = mapped_column(
        ForeignKey("components.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(255))


class WorkerGroupRow(Base):
    """A named pool of machines of one size that environments and components are pinned to."""

    __tablename__ = "worker_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    machine_size: Mapped[str] = mapped_column(String(64))
    count: Mapped[int]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))


class AuditEventRow(Base):
    """One audited change; ``hash`` = sha256(``prev_hash`` + the event's canonical JSON).

    Ids are given by the code (the head's id + 1), so they run 1, 2, 3 … without gaps.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(500))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The single row (id 1) naming the last event; locking it serializes appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_id: Mapped[int]
    last_hash: Mapped[str] = mapped_column(String(64))


class ApiTokenRow(Base):
    """A bearer token for the registry API: only a sha256 of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None]
    # What the token may name (None: anything) and until when it verifies (None: always).
    projects: Mapped[list[str] | None] = mapped_column(JSON)
    environments: Mapped[list[str] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]


class EnvironmentApiKeyRow(Base):
    """A serving API key bound to one environment: only a sha256 of its secret is stored.

    ``hash_scheme`` says what ``secret_hash`` hashes: ``sha256-secret`` (the secret part),
    or ``sha256-text`` (the whole key) for keys made before migration 0004.
    """

    __tablename__ = "environment_api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME))
    secret_hash: Mapped[str] = mapped_column(String(64))
    hash_scheme: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: until revoked


class BatchJobRow(Base):
    """A batch scoring job: its state survives server restarts (queued, running, …)."""

    __tablename__ = "batch_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    component: Mapped[str] = mapped_column(String(NAME))
    version_tag: Mapped[str | None] = mapped_column(String(32))
    bundle_digest: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    input_uri: Mapped[str] = mapped_column(Text)
    output_uri: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]]
    rows_done: Mapped[int] = mapped_column(BigInteger)
    rows_rejected: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class TrustedKeyRow(Base):
    """An Ed25519 public key the registry trusts to sign bundles; revoked, never deleted."""

    __tablename__ = "trusted_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(255))


class DriftResultRow(Base):
    """One drift test of one column of a served version over one window of captured requests.

    Recording a window again replaces its rows (same environment, model, version, column,
    test and window).
    """

    __tablename__ = "drift_results"
    __table_args__ = (
        Index("ix_drift_results_lookup", "environment_id", "model", "version", "window_end"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(NAME))
    version: Mapped[str] = mapped_column(String(32))
    column_name: Mapped[str] = mapped_column(String(255))
    test: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    score: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    threshold_level: Mapped[str] = mapped_column(String(16))
    drifted: Mapped[bool]
    rows: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))


class ChangeRequestRow(Base):
    """A promotion or rollback waiting for approval (``approvals_required``), and its outcome.

    ``base_revision`` is the target's revision when it was asked for: a request applies only
    onto that revision, so what was approved is what happens.
    """

    __tablename__ = "change_requests"
    __table_args__ = (Index("ix_change_requests_environment_state", "environment_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    source_environment: Mapped[str | None] = mapped_column(String(NAME))
    source_revision: Mapped[int | None]
    to_revision: Mapped[int | None]
    allow_empty: Mapped[bool]
    base_revision: Mapped[int]
    approvals_required: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(255))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str] = mapped_column(Text)
    result_revision: Mapped[int | None]


class ChangeApprovalRow(Base):
    """One person's approval of a change request (at most one each)."""

    __tablename__ = "change_approvals"
    __table_args__ = (UniqueConstraint("request_id", "actor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime]
