"""``RegistryAPI``: the registry's operations, as the embedded registry and the client offer them.

``Registry`` (the database in this process) and ``shipyard.registry_http.RegistryClient``
(a registry server over HTTP) both implement it: code that takes a ``RegistryAPI`` --
the CLI through ``open_backend()``, a serve process following an environment, a batch
worker -- works the same embedded and over ``SHIPYARD_URL``. Results are ``Registry``'s
frozen dataclasses or, from the client, the plain JSON data ``to_json`` makes of them:
read them through ``to_json`` to treat both alike. A test walks this Protocol against
``Registry``'s methods and the HTTP operation table, so the three cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["RegistryAPI"]


class RegistryAPI(Protocol):
    """Every registry operation, one method each (see ``Registry`` for what each raises)."""

    def list_projects(self) -> Any:
        """Every project, by name."""
        ...

    def create_project(
        self, name: str, environments: Sequence[str] = ("integration", "uat", "production")
    ) -> Any:
        """Create a project with a promotion chain (default integration -> uat -> production)."""
        ...

    def get_project(self, name: str) -> Any:
        """One project; NotFound when it does not exist."""
        ...

    def delete_project(self, name: str) -> Any:
        """Delete a project with its environments, models, versions, revisions and settings."""
        ...

    def list_models(self, project: str) -> Any:
        """The project's models with their default version and version counts."""
        ...

    def register_model(
        self,
        project: str,
        bundle_path: str | os.PathLike[str],
        app_config: dict[str, Any] | None = None,
        model_card: dict[str, Any] | None = None,
    ) -> Any:
        """Verify a bundle, store it, and add it to its model as a new candidate version."""
        ...

    def register_app(
        self,
        project: str,
        bundle_path: str | os.PathLike[str],
        app_config: dict[str, Any] | None = None,
    ) -> Any:
        """Verify an app bundle, store it, and add it to its app as a new candidate version."""
        ...

    def list_apps(self, project: str) -> Any:
        """The project's apps with their default version and version counts."""
        ...

    def versions(self, project: str, model: str) -> Any:
        """Every version of a model, oldest first."""
        ...

    def get_version(self, project: str, model: str, version: str | int | None = None) -> Any:
        """One version by tag or version id (the default version when None)."""
        ...

    def fetch_bundle(
        self, project: str, model: str, version: str | int | None, folder: str | os.PathLike[str]
    ) -> Any:
        """Copy a version's bundle from the store into ``folder`` as ``NAME-VERSION.tar.gz``."""
        ...

    def tag(self, project: str, model: str, version_id: int | str) -> Any:
        """Tag a candidate version with the model's next ``vN``; returns the tagged version."""
        ...

    def set_default(self, project: str, model: str, version: str | int | None) -> Any:
        """Make a tagged version the model's default; None returns to "the newest tag"."""
        ...

    def list_environments(self, project: str) -> Any:
        """The project's environments, in creation order."""
        ...

    def create_environment(self, project: str, name: str, promotes_to: str | None = None) -> Any:
        """Add an empty environment (revision 1) that promotes to ``promotes_to`` (or nowhere)."""
        ...

    def get_environment(self, project: str, name: str) -> Any:
        """One environment; NotFound when it does not exist."""
        ...

    def delete_environment(self, project: str, name: str) -> Any:
        """Delete an environment and its revisions."""
        ...

    def set_promotes_to(self, project: str, name: str, promotes_to: str | None) -> Any:
        """Point an environment at another one to promote to (None: the end of the chain)."""
        ...

    def create_challenger(self, project: str, name: str, from_env: str) -> Any:
        """Clone ``from_env``'s components and environment config into a new challenger."""
        ...

    def list_components(self, project: str, env: str) -> Any:
        """The components an environment holds now, by name."""
        ...

    def add_component(
        self,
        project: str,
        env: str,
        name: str,
        version: str | int | None = None,
        app_config: dict[str, Any] | None = None,
    ) -> Any:
        """Deploy a model or app version (default version when None) into an environment."""
        ...

    def remove_component(self, project: str, env: str, name: str) -> Any:
        """Remove a component (and its component-level settings) from an environment."""
        ...

    def save_component_config(self, project: str, env: str) -> Any:
        """The environment's component set as YAML text (see ``apply_component_config``)."""
        ...

    def apply_component_config(self, project: str, env: str, text: str) -> Any:
        """Make an environment hold exactly the components of a component config (one revision)."""
        ...

    def get_environment_config(self, project: str, env: str) -> Any:
        """The environment config (free-form; bound to the environment, never promoted)."""
        ...

    def set_environment_config(self, project: str, env: str, config: dict[str, Any]) -> Any:
        """Replace the environment config with ``config`` (a JSON object); a new revision."""
        ...

    def promote(self, project: str, env: str) -> Any:
        """Copy ``env``'s whole component set (versions and app config) into its ``promotes_to``."""
        ...

    def rollback(
        self, project: str, env: str, to: int | None = None, allow_empty: bool = False
    ) -> Any:
        """Make a new revision equal to revision ``to`` (default: the one before the current)."""
        ...

    def history(self, project: str, env: str) -> Any:
        """Every revision of an environment, newest first."""
        ...

    def list_change_requests(
        self, project: str, env: str | None = None, state: str | None = None
    ) -> Any:
        """The project's change requests (of one environment, in one state), newest first."""
        ...

    def get_change_request(self, project: str, request_id: int) -> Any:
        """One change request with its approvals."""
        ...

    def approve_change(self, project: str, request_id: int) -> Any:
        """Approve a pending change request; the last approval needed applies it."""
        ...

    def reject_change(self, project: str, request_id: int, reason: str = "") -> Any:
        """Reject (or, as its requester, withdraw) a pending change request; nothing applies."""
        ...

    def get_revision(self, project: str, env: str, number: int | None = None) -> Any:
        """One revision of an environment (the current one when ``number`` is None)."""
        ...

    def status(self, project: str, env: str) -> Any:
        """What an environment runs: revision, components with versions, effective settings."""
        ...

    def diff(self, project: str, a: str, b: str) -> Any:
        """How ``b`` differs from ``a``, each an environment (``uat``) or a revision (``uat@3``)."""
        ...

    def submit_batch_job(
        self,
        project: str,
        env: str,
        model: str,
        input: str,
        output: str,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Queue a job scoring ``input`` into ``output`` with the model version ``env`` runs now."""
        ...

    def list_batch_jobs(
        self,
        project: str | None = None,
        env: str | None = None,
        state: str | None = None,
        limit: int = 50,
    ) -> Any:
        """Batch jobs, newest first, optionally of one project (and environment) or in one state."""
        ...

    def get_batch_job(
        self,
        job_id: int,
        project: str | None = None,
        env: str | None = None,
        model: str | None = None,
    ) -> Any:
        """One batch job by id."""
        ...

    def cancel_batch_job(self, job_id: int) -> Any:
        """Cancel a queued or running batch job."""
        ...

    def claim_batch_job(self, worker: str) -> Any:
        """Take the oldest queued batch job for ``worker`` (it becomes running); None if none."""
        ...

    def recover_batch_jobs(self, stale_after: float, max_attempts: int = 3) -> Any:
        """Batch jobs left running by a dead worker (no heartbeat for ``stale_after`` seconds)."""
        ...

    def heartbeat_batch_job(
        self, job_id: int, worker: str, rows_done: int, rows_rejected: int
    ) -> Any:
        """Record a running job's progress and heartbeat."""
        ...

    def finish_batch_job(
        self,
        job_id: int,
        worker: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Any:
        """Record how ``worker``'s run of a job ended: succeeded with ``result``, or failed."""
        ...

    def get_settings(
        self, project: str | None = None, env: str | None = None, component: str | None = None
    ) -> Any:
        """Every setting's effective value at a level (see ``get_setting``)."""
        ...

    def get_setting(
        self,
        key: str,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> Any:
        """A setting's effective value at a level, and the level it comes from."""
        ...

    def set_setting(
        self,
        key: str,
        value: Any,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> Any:
        """Set a setting at one level (see ``get_setting``); text values are parsed."""
        ...

    def inherit_setting(
        self,
        key: str,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> Any:
        """Clear a setting at one level so it inherits again; returns the value now in effect."""
        ...

    def list_worker_groups(self) -> Any:
        """Every worker group, by name."""
        ...

    def create_worker_group(self, name: str, machine_size: str, count: int = 1) -> Any:
        """Define a pool of ``count`` machines of ``machine_size``; Conflict if the name exists."""
        ...

    def update_worker_group(
        self, name: str, machine_size: str | None = None, count: int | None = None
    ) -> Any:
        """Change a worker group's machine size and/or count."""
        ...

    def delete_worker_group(self, name: str) -> Any:
        """Delete a worker group; Conflict listing the levels whose ``worker_group`` names it."""
        ...

    def audit_list(self, limit: int | None = None, object_prefix: str | None = None) -> Any:
        """Audit events, newest first; ``object_prefix`` such as ``project/demo`` filters them."""
        ...

    def audit_verify(self, raise_error: bool = True, anchors: dict[str, str] | None = None) -> Any:
        """Check the audit log's hash chain from the first event to the head."""
        ...

    def audit_head(self) -> Any:
        """The audit chain's head now (last event id, hash, time): what an anchor records."""
        ...

    def audit_anchor(self) -> Any:
        """Write the audit head to the registry's witness ($SHIPYARD_AUDIT_ANCHORS)."""
        ...

    def list_tokens(self) -> Any:
        """Every API token's public record (never the secret)."""
        ...

    def create_token(
        self,
        name: str,
        role: str,
        projects: list[str] | None = None,
        environments: list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> Any:
        """Create an API token; returns its record and the token text, shown only now."""
        ...

    def revoke_token(self, token_id: int) -> Any:
        """Revoke a token: it stops verifying at once. NotFound for an unknown id."""
        ...

    def list_api_keys(self, project: str, env: str) -> Any:
        """Every API key of ``env`` (revoked ones too), oldest first; never the key itself."""
        ...

    def create_api_key(
        self, project: str, env: str, name: str = "default", expires_in_days: int | None = None
    ) -> Any:
        """Make an API key for serving ``env``; returns its record and the key, shown only now."""
        ...

    def revoke_api_key(self, project: str, env: str, key_id: int) -> Any:
        """Revoke an API key of ``env``: servers refuse it from their next poll."""
        ...

    def api_key_digests(self, project: str, env: str) -> Any:
        """The digests of ``env``'s live API keys: what a server checks presented keys against."""
        ...

    def list_trusted_keys(self) -> Any:
        """Every trusted key, revoked ones included, oldest first."""
        ...

    def trust_key(self, name: str, public_key: str) -> Any:
        """Trust an Ed25519 public key (PEM text) under ``name``; returns its record."""
        ...

    def revoke_trusted_key(self, name: str) -> Any:
        """Stop trusting a key (by name or key id); returns its record. Needs the admin role."""
        ...

    def record_drift(self, project: str, env: str, results: dict[str, Any]) -> Any:
        """Store the drift results of one monitoring run; returns how many were stored."""
        ...

    def drift_results(
        self,
        project: str,
        env: str,
        model: str | None = None,
        version: str | None = None,
        since: str | None = None,
        latest: bool = False,
    ) -> Any:
        """Stored drift results of an environment, oldest window first."""
        ...

    def record_deployment(
        self,
        project: str,
        env: str,
        action: str,
        target: str,
        revision: int,
        image: str,
        digest: str | None = None,
    ) -> Any:
        """Record that ``target``'s deployment of ``env`` revision ``revision`` was made."""
        ...

    def list_deployments(self, project: str, env: str) -> Any:
        """The newest render and build of each target for ``env``, by target then action."""
        ...
