"""The signature policy: which bundles an environment may hold, judged by the trusted keys.

A bundle is *trusted* when its MANIFEST.sig is a valid signature of its manifest by a
key in the ``trusted_keys`` table that is not revoked. Registration records the signer
(``component_versions.signer_key_id``); a version registered before its key was trusted
is judged again from its stored bundle, so trusting a key later needs no re-registration.

The ``require_signature`` setting decides where trust is needed: ``auto`` (the default)
means at the end of a promotion chain (an environment that promotes nowhere and is not a
challenger: production, in the default chain); ``true`` and ``false`` set it plainly.
A change that adds or changes a version in such an environment (component add, component
config, promotion, rollback) is refused with SignatureRequired unless every such version
is trusted. ``allow_pickle`` (default false) is what lets serve and batch load a bundle
that holds a plain pickle in that environment; both settings need the admin role.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ArtifactError, ModelError, SignatureRequired
from ..runtime import key_id, load_public_key, read_bundle, signature_key
from . import _settings
from ._rows import ComponentVersionRow, EnvironmentRow, ProjectRow, TrustedKeyRow
from ._state import Entry, State
from ._store import ArtifactStore


def public_key_id(pem: str) -> str:
    """The key id of a PEM public key; raises the runtime's SignatureError on a bad key."""
    raw = load_public_key(pem)
    assert raw is not None
    return key_id(raw)


def key_ring(keys: Iterable[Mapping[str, Any]]) -> dict[str, bytes]:
    """``{key id: raw public key}`` of the unrevoked ones among trusted-key records (the
    ``TrustedKey`` fields as plain data: ``key_id``, ``public_key``, ``revoked``)."""
    found = {}
    for key in keys:
        raw = load_public_key(key["public_key"])
        if not key["revoked"] and raw is not None:
            found[key["key_id"]] = raw
    return found


def trusted_keys(session: Session) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The trusted keys as ``{key id: raw key}``: the live ones, and every one (revoked too)."""
    every, live = {}, {}
    for row in session.execute(select(TrustedKeyRow)).scalars():
        raw = load_public_key(row.public_key)
        assert raw is not None  # trust_key stored only keys that load
        every[row.key_id] = raw
        if row.revoked_at is None:
            live[row.key_id] = raw
    return live, every


def why_untrusted(
    store: ArtifactStore,
    version: ComponentVersionRow,
    live: Mapping[str, bytes],
    every: Mapping[str, bytes],
) -> str | None:
    """None when ``version`` is signed by a key in ``live``; else the reason.

    ``live`` and ``every`` are ``trusted_keys``'s two rings.
    """
    if version.signer_key_id is not None and version.signer_key_id in live:
        return None
    signer = version.signer_key_id
    if signer is None:
        try:
            files = stored_files(store, version.digest)
        except ArtifactError as exc:
            return f"its stored bundle cannot be read ({exc})"
        if "MANIFEST.sig" not in files:
            return "it is unsigned"
        signer = signature_key(files, every)
        if signer is None:
            return "it is signed by a key the registry does not trust"
        if signer in live:
            return None
    return f"the key that signed it ({signer}) has been revoked"


def stored_files(store: ArtifactStore, digest: str) -> dict[str, bytes]:
    """The files of a stored bundle, fetched (sha256-checked) into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="shipyard-policy-") as folder:
        path = store.fetch(digest, Path(folder) / "bundle.tar.gz")
        return read_bundle(path)[1]


def signature_required(value: Any, chain_end: bool) -> bool:
    """What a ``require_signature`` value means for an environment (``auto``: at a chain's end)."""
    return chain_end if value == "auto" else bool(value)


def requires_signature(
    session: Session, project: ProjectRow, env: EnvironmentRow, state: State, entry: Entry
) -> bool:
    """Whether ``entry`` in ``env`` (in the state about to be written) needs a trusted key.

    Inherits like any setting; the environment and component levels are read from
    ``state``, which may differ from what the database holds until it is written.
    """
    levels = _settings.chain(project.id, env.id, entry.component.id)
    values = _settings.values_at(session, [where for _, where in levels])
    where = dict(levels)
    values[where["environment"]] = state.env_settings
    values[where["component"]] = state.component_settings.get(entry.component.name, {})
    value = _settings.effective("require_signature", levels, values).value
    return signature_required(value, env.promotes_to_id is None and not env.is_challenger)


def check_policy(
    session: Session,
    store: ArtifactStore,
    project: ProjectRow,
    env: EnvironmentRow,
    current: State,
    new: State,
) -> None:
    """Refuse ``new`` when it brings an untrusted version into an environment needing trust.

    Only versions that are new or changed against ``current`` are judged, so revoking a
    key never blocks an unrelated change. Raises SignatureRequired naming each refusal.
    """
    problems = []
    rings: tuple[dict[str, bytes], dict[str, bytes]] | None = None
    for name, entry in sorted(new.entries.items()):
        before = current.entries.get(name)
        if before is not None and before.version.id == entry.version.id:
            continue
        if not requires_signature(session, project, env, new, entry):
            continue
        rings = rings or trusted_keys(session)
        reason = why_untrusted(store, entry.version, *rings)
        if reason is not None:
            label = entry.version.tag or f"version {entry.version.number}"
            problems.append(f"{name} {label}: {reason}")
    if problems:
        raise SignatureRequired(
            f"environment '{env.name}' of project '{project.name}' requires bundles signed "
            f"by a trusted key (setting require_signature): refused {'; '.join(problems)}. "
            "Sign the bundle (artifact build --sign-key) with a key the registry trusts "
            "(key trust)"
        )


class LoadPolicy:
    """What a process that loads bundles from one environment may load, asked once.

    ``registry`` is a ``Registry`` or a ``RegistryClient`` (results read as plain data).
    ``check`` refuses, before any model file or feature source of the bundle is used, a
    bundle no trusted, unrevoked key signed where signatures are required (whatever the
    host's SHIPYARD_PUBLIC_KEY says), or one holding a plain pickle without allow_pickle.
    """

    def __init__(
        self,
        registry: Any,
        project: str,
        environment: str,
        status: Mapping[str, Any] | None = None,
    ) -> None:
        from ._types import to_json

        self.environment = environment
        found = to_json(registry.get_environment(project, environment))
        chain_end = found["promotes_to"] is None and not found["is_challenger"]
        if status is None:  # a caller that has just read it passes it in
            status = to_json(registry.status(project, environment))
        self._components: dict[str, tuple[bool, bool]] = {}
        for component in status["components"]:
            values = {k: v["value"] for k, v in component["settings"].items()}
            self._components[component["name"]] = (
                signature_required(values.get("require_signature", "auto"), chain_end),
                bool(values.get("allow_pickle", False)),
            )
        self._keys = key_ring(to_json(registry.list_trusted_keys()))

    def check(
        self, component: str, label: str, files: Mapping[str, bytes], metadata: Any
    ) -> tuple[bytes | None, bool]:
        """Raise SignatureRequired or ModelError when ``component`` ``label`` may not load.

        ``files`` must already match their manifest (``Artifact.verify``). Returns the
        trusted key that signed the bundle (None if none did) and whether unsafe formats
        may load (``allow_pickle``): what ``Artifact.executor`` takes as ``public_key``
        and ``allow_unsafe``.
        """
        require, allow_pickle = self._components.get(component, (True, False))
        signer = signature_key(files, self._keys)
        if require and signer is None:
            raise SignatureRequired(
                f"{component} {label}: refused to load: environment '{self.environment}' "
                "requires a signature by a trusted, unrevoked key, and this bundle has none"
            )
        pickles = [
            str(node.get("name"))
            for node in (metadata.get("nodes") or [])
            if isinstance(node, dict) and node.get("flavor") == "pickle"
        ]
        if pickles and not allow_pickle:
            raise ModelError(
                f"{component} {label}: refused to load: node(s) {', '.join(pickles)} are "
                "plain pickles, which run code when loaded; an admin may allow them for "
                "this environment with the setting allow_pickle"
            )
        return (self._keys[signer] if signer is not None else None), allow_pickle
