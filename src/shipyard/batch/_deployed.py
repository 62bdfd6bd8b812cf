"""The bundle an environment runs, fetched from the registry for a batch run."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import NotFound
from ..registry import LoadPolicy, llm_endpoint
from ..runtime import Artifact
from ._options import BatchOptions


def deployed_component(registry: Any, project: str, env: str, model: str) -> Any:
    """The version of ``model`` that ``env`` runs now (a registry's or a server's answer).

    Raises NotFound listing the models the environment runs (an app scores no rows).
    """
    deployed = {
        _field(c, "name"): c
        for c in registry.list_components(project, env)
        if _field(c, "kind") == "model"
    }
    if model not in deployed:
        runs = ", ".join(sorted(deployed)) or "none"
        raise NotFound(
            f"environment '{env}' of project '{project}' does not run model '{model}' "
            f"(it runs: {runs})"
        )
    return deployed[model]


def fetch_deployed(
    registry: Any,
    project: str,
    env: str,
    model: str,
    folder: str | os.PathLike[str],
    options: BatchOptions | None = None,
) -> tuple[Path, BatchOptions]:
    """Copy the bundle of the version ``env`` runs into ``folder``, checked against the
    environment's trust; return its path and ``options`` carrying that trust and the
    component's app config.

    ``registry``: a ``Registry`` or a ``RegistryClient``. Raises NotFound, and what
    ``check_loadable`` raises.
    """
    component = deployed_component(registry, project, env, model)
    version = _field(component, "version_id")
    revision = _field(registry.get_environment(project, env), "revision")
    path = Path(registry.fetch_bundle(project, model, version, folder))
    trusted = check_loadable(registry, project, env, model, str(version), path, options)
    origin = {**(trusted.provenance or {}), "revision": revision}
    origin["version"] = _field(component, "tag") or f"candidate {version}"
    config = _field(component, "app_config")  # what the environment runs it with
    return path, replace(trusted, provenance=origin, app_config=config)


def _field(result: Any, name: str) -> Any:
    """A field of a registry's answer: a dataclass, or a server's JSON object."""
    return result[name] if isinstance(result, dict) else getattr(result, name)


def check_loadable(
    registry: Any,
    project: str,
    env: str,
    model: str,
    label: str,
    bundle: Path,
    options: BatchOptions | None = None,
) -> BatchOptions:
    """Refuse a fetched bundle that ``env`` may not run, before any of it is loaded.

    Verifies every file, then applies the environment's signature and pickle policy
    against the registry's trusted keys (``LoadPolicy``): SignatureRequired, ModelError,
    or the runtime's TamperedArtifact. Returns ``options`` with the trusted key that
    signed the bundle (when one did), ``allow_unsafe`` from ``allow_pickle``, and the llm
    endpoint the environment config names (``llm_endpoint``: unless this host names one).
    """
    artifact = Artifact(bundle)
    artifact.verify()
    policy = LoadPolicy(registry, project, env)
    signer, allow_unsafe = policy.check(model, label, artifact.files, artifact.metadata)
    chosen = options or BatchOptions()
    key = signer if signer is not None else chosen.public_key
    origin = {"project": project, "environment": env, "model": model, "version": label}
    endpoint = llm_endpoint(registry.get_environment_config(project, env))
    return replace(
        chosen,
        public_key=key,
        allow_unsafe=allow_unsafe,
        provenance={**(chosen.provenance or {}), **origin},
        endpoint=endpoint if endpoint is not None else chosen.endpoint,
    )
