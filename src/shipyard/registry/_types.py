"""What the registry returns: frozen dataclasses holding only JSON types.

``to_json(value)`` turns any of them (or lists and dicts of them) into plain JSON data
for a CLI's ``--json`` or an HTTP response. Times are ISO 8601 strings in UTC.
A component version is named by its ``version_id`` (1, 2, 3 … per component, given at
registration) and, once tagged, by its ``tag`` (``v1``, ``v2`` …).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

JSONValue = Any


def to_json(value: Any) -> JSONValue:
    """Plain JSON data (dicts, lists, str, numbers, bools, None) from registry results."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


@dataclass(frozen=True)
class Project:
    """A project and its environments (names, in creation order)."""

    name: str
    created_at: str
    created_by: str
    environments: list[str]


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a component (a model or an app); ``tag`` is None while it is
    a candidate."""

    project: str
    model: str
    version_id: int
    tag: str | None
    is_default: bool
    bundle_name: str
    bundle_version: str
    digest: str
    size: int
    signed: bool
    app_config: dict[str, Any]
    created_at: str
    created_by: str
    tagged_at: str | None
    tagged_by: str | None
    # The id of the trusted key that signed the bundle, as judged at registration.
    signer_key_id: str | None = None
    # Owner, intended use, validation metrics, limitations, approvals: the bundle's model
    # card completed by the one given at registration.
    model_card: dict[str, Any] = dataclasses.field(default_factory=dict)
    # What the component is: "model" (a pipeline's bundle) or "app" (a web app's bundle);
    # ``model`` then names the app.
    kind: str = "model"

    @property
    def label(self) -> str:
        """``v2`` for a tagged version, ``candidate 3`` otherwise."""
        return self.tag or f"candidate {self.version_id}"


@dataclass(frozen=True)
class Model:
    """A component (a model, or an app: see ``kind``): its default version and how many
    versions it has."""

    project: str
    name: str
    kind: str
    default_version: str | None
    versions: int
    candidates: int
    latest_bundle_version: str | None


@dataclass(frozen=True)
class Environment:
    """An environment of a project's promotion chain."""

    project: str
    name: str
    promotes_to: str | None
    challenger_of: str | None
    is_challenger: bool
    revision: int
    created_at: str
    created_by: str


@dataclass(frozen=True)
class DeployedComponent:
    """A component version deployed in an environment (in one revision), with its app config."""

    name: str
    kind: str
    version_id: int
    tag: str | None
    bundle_name: str
    bundle_version: str
    digest: str
    app_config: dict[str, Any]


@dataclass(frozen=True)
class Revision:
    """An immutable snapshot of an environment: components, its settings and environment config.

    ``settings`` is ``{"environment": {key: value}, "components": {name: {key: value}}}``
    (only the values set at those levels).
    """

    project: str
    environment: str
    number: int
    created_at: str
    actor: str
    action: str
    reason: str
    components: list[DeployedComponent]
    settings: dict[str, Any]
    config: dict[str, Any]


@dataclass(frozen=True)
class EffectiveSetting:
    """A setting's value where it was asked for, and the level it came from.

    ``level`` is ``component``, ``environment``, ``project``, ``global`` or ``default``;
    ``inherited`` is True when it came from a level above the one asked about.
    """

    key: str
    value: Any
    level: str
    inherited: bool


@dataclass(frozen=True)
class ComponentStatus(DeployedComponent):
    """A deployed component with its effective settings."""

    settings: dict[str, EffectiveSetting]


@dataclass(frozen=True)
class EnvironmentStatus:
    """What an environment runs now: its revision, components, effective settings and config."""

    project: str
    environment: str
    promotes_to: str | None
    challenger_of: str | None
    revision: int
    updated_at: str
    updated_by: str
    components: list[ComponentStatus]
    settings: dict[str, EffectiveSetting]
    config: dict[str, Any]


@dataclass(frozen=True)
class FileDiff:
    """A GenAI file (a prompt template, llm.json, …) that differs between two versions.

    ``diff`` is a unified diff from ``b``'s version to ``a``'s (what putting ``a`` into
    ``b`` changes); ``change`` is "changed", "added" or "removed"; ``added`` and
    ``removed`` count its lines; ``truncated`` says lines were left out of ``diff``.
    """

    path: str  # in the bundle; a retrieve node's settings are "metadata.json#NODE"
    node: str
    kind: str  # prompt, llm, knowledge, retrieve, parse
    change: str
    added: int
    removed: int
    diff: str
    truncated: bool = False


@dataclass(frozen=True)
class ComponentDiff:
    """How one component differs between ``a`` and ``b`` (a version is None where it is absent).

    ``files``: for a version change, the GenAI files (templates, LLM settings, knowledge,
    answer schemas) whose text differs between the two bundles, as unified diffs.
    """

    name: str
    change: str  # "added", "removed", "version", "app_config", "version, app_config"
    a_version: str | None
    b_version: str | None
    a_app_config: dict[str, Any] | None
    b_app_config: dict[str, Any] | None
    files: list[FileDiff] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class ValueDiff:
    """A setting or config key whose value differs (None where it is not set)."""

    key: str
    a: Any
    b: Any


@dataclass(frozen=True)
class Diff:
    """The differences between two environments or revisions; ``same`` when there are none."""

    a: str
    b: str
    same: bool
    components: list[ComponentDiff]
    settings: list[ValueDiff]
    config: list[ValueDiff]


@dataclass(frozen=True)
class WorkerGroup:
    """A named pool of ``count`` machines of one ``machine_size``."""

    name: str
    machine_size: str
    count: int
    created_at: str
    created_by: str


@dataclass(frozen=True)
class AuditEntry:
    """One audit event: who did what to which object, with the object before and after."""

    id: int
    at: str
    actor: str
    action: str
    object: str
    before: Any
    after: Any
    hash: str


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the audit chain; ``head_hash`` can be recorded elsewhere."""

    ok: bool
    events: int
    head_hash: str
    broken_event: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AuditAnchor:
    """The audit chain's head at one moment: its last event's id, hash and time."""

    sequence: int
    hash: str
    at: str


@dataclass(frozen=True)
class ApiToken:
    """An API token's public part (the secret is shown once, at creation, and never stored)."""

    id: int
    name: str
    role: str
    created_at: str
    created_by: str
    revoked: bool
    # The projects and environments a request may name (None: any), and the expiry.
    projects: list[str] | None = None
    environments: list[str] | None = None
    expires_at: str | None = None


@dataclass(frozen=True)
class ApiKey:
    """A serving API key's public record (the key is shown once, at creation, and never stored)."""

    id: int
    project: str
    environment: str
    name: str
    created_at: str
    created_by: str
    revoked: bool
    expires_at: str | None = None  # servers stop accepting it then (None: until revoked)


@dataclass(frozen=True)
class ApiKeyDigest:
    """What a server checks a presented API key against: a live key's id and stored digest.

    ``scheme`` says what was hashed: ``sha256-secret`` (the secret part; every key made
    since migration 0004) or ``sha256-text`` (the whole key; keys made before it).
    """

    id: int
    scheme: str
    digest: str


@dataclass(frozen=True)
class Approval:
    """One person's approval of a change request."""

    actor: str
    at: str


@dataclass(frozen=True)
class ChangeRequest:
    """A promotion or rollback into an environment that needs approvals before it applies.

    ``state``: ``pending``, ``applied`` (``result_revision`` is the revision it made),
    ``rejected`` or ``stale`` (the environment changed after the request, so it was not
    applied). ``source`` and ``source_revision`` name what a promotion copies;
    ``to_revision`` what a rollback restores.
    """

    id: int
    project: str
    environment: str
    action: str
    source: str | None
    source_revision: int | None
    to_revision: int | None
    allow_empty: bool
    base_revision: int
    state: str
    approvals_required: int
    approvals: list[Approval]
    requested_by: str
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    note: str
    result_revision: int | None


@dataclass(frozen=True)
class TrustedKey:
    """A public key the registry trusts to sign bundles (``key_id``: its short fingerprint)."""

    name: str
    key_id: str
    public_key: str
    created_at: str
    created_by: str
    revoked: bool
    revoked_at: str | None
    revoked_by: str | None


@dataclass(frozen=True)
class BatchJob:
    """A batch job: the version it scores with, its files, its state and progress.

    ``state``: queued, running, succeeded, failed or cancelled. ``version`` and
    ``bundle_digest`` name the version the environment ran at submission; ``rejects`` is
    where rows that fail validation go; ``result`` is the run's summary once it succeeded.
    """

    id: int
    project: str
    environment: str
    model: str
    version: str | None
    bundle_digest: str | None
    state: str
    input: str
    output: str
    rejects: str
    options: dict[str, Any]
    attempts: int
    rows_done: int
    rows_rejected: int
    result: dict[str, Any] | None
    error: str | None
    worker: str | None
    created_at: str
    created_by: str
    started_at: str | None
    heartbeat_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class Deployment:
    """A deployment made of an environment revision: manifests rendered or an image built.

    ``action`` is ``render`` or ``build``; ``target`` what for (``kubernetes``, ``kserve``,
    ``compose``, an image kind); ``digest`` the sha256 of the rendered files or of the
    image; ``audit_event`` the id of the audit event that records it.
    """

    project: str
    environment: str
    action: str
    target: str
    revision: int
    image: str
    digest: str | None
    at: str
    actor: str
    audit_event: int


@dataclass(frozen=True)
class DriftResult:
    """One drift test of one column of a served version over one window of requests.

    ``column`` is ``TABLE.COLUMN`` for an input, ``output.NODE`` for an output; ``test``
    is ``psi``, ``ks``, ``chi2``, ``z`` or ``js``; ``score`` the test's statistic (PSI,
    KS distance, chi-square, z or Jensen-Shannon distance) and ``p_value`` its p-value
    where it has one. ``threshold`` is what it was judged against (a p-value bound for
    ks, chi2 and z, a score bound otherwise), from the setting ``drift_thresholds`` at
    ``threshold_level``; ``rows`` the captured rows in the window.
    """

    project: str
    environment: str
    model: str
    version: str
    column: str
    test: str
    window_start: str
    window_end: str
    score: float
    p_value: float | None
    threshold: float
    threshold_level: str
    drifted: bool
    rows: int
    detail: dict[str, Any]
    created_at: str
    created_by: str
