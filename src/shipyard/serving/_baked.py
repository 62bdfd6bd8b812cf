"""A baked environment: one revision of an environment frozen into a folder, served offline.

``shipyard deploy image`` writes the folder into the image (``shipyard.deploy`` owns the
writing); ``shipyard serve --bundle-dir DIR`` serves it with no registry. The folder holds
``environment.json`` and the bundle files it names::

    environment.json   {"format": FORMAT, "project", "environment",
                        "environment_record": get_environment's answer as JSON,
                        "status": status's answer as JSON (components, settings, config),
                        "trusted_keys": list_trusted_keys's answer,
                        "api_key_digests": api_key_digests's answer,
                        "versions": {model: {label: {"digest": sha256, "file": PATH}}}}
    DIGEST16/NAME-VERSION.tar.gz   each bundle (PATH), in a folder named by its sha256's
                                   first 16 digits: two versions may share a file name

``BakedRegistry`` answers the few registry calls ``EnvironmentLoader`` and ``LoadPolicy``
make from those recorded answers, so a baked environment is loaded exactly as a live
one is: every bundle's sha256 checked against the recorded digest, its manifest
verified, and the environment's signature and pickle policy applied with the trusted
keys recorded at build time, before any of it is loaded; traffic splits and shadows come
from the recorded settings. Nothing is ever written into the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import NotFound, UsageError

FORMAT = "shipyard-baked-environment/1"
STATE_FILE = "environment.json"


class BakedRegistry:
    """The registry answers recorded in a baked environment folder (read-only).

    Raises UsageError when the folder holds no readable ``environment.json`` of this format.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        path = self.folder / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a baked environment ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else None
            raise UsageError(f"{path}: format {found!r} is not {FORMAT!r}")
        self.state: dict[str, Any] = state
        self.project: str = state["project"]
        self.environment: str = state["environment"]

    def __enter__(self) -> BakedRegistry:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the state was read once."""

    def _check(self, project: str, env: str) -> None:
        if (project, env) != (self.project, self.environment):
            raise NotFound(
                f"this image serves {self.project}/{self.environment}, not {project}/{env}"
            )

    def get_environment(self, project: str, name: str) -> dict[str, Any]:
        """The environment record as it was when the folder was baked."""
        self._check(project, name)
        found: dict[str, Any] = self.state["environment_record"]
        return found

    def status(self, project: str, env: str) -> dict[str, Any]:
        """The environment's status (components, settings, config) at the baked revision."""
        self._check(project, env)
        found: dict[str, Any] = self.state["status"]
        return found

    def get_environment_config(self, project: str, env: str) -> dict[str, Any]:
        """The environment config at the baked revision."""
        return dict(self.status(project, env)["config"])

    def list_trusted_keys(self) -> list[dict[str, Any]]:
        """The registry's trusted keys when the folder was baked (revoked ones marked)."""
        return list(self.state["trusted_keys"])

    def api_key_digests(self, project: str, env: str) -> list[dict[str, Any]]:
        """The digests of the environment's live API keys when the folder was baked."""
        self._check(project, env)
        return list(self.state["api_key_digests"])

    def _version(self, model: str, label: str | int | None) -> dict[str, Any]:
        versions = self.state["versions"].get(model, {})
        found = versions.get(str(label))
        if found is None:
            baked = ", ".join(f"{model} {v}" for v in sorted(versions)) or "none of it"
            raise NotFound(f"{model} {label} is not baked into this image (baked: {baked})")
        return dict(found)

    def get_version(
        self, project: str, model: str, version: str | int | None = None
    ) -> dict[str, Any]:
        """A baked version's record: its ``digest`` (the sha256 of its bundle) and, when baked
        by this Shipyard, its ``app_config`` (the version's own, or for the deployed version
        the environment's)."""
        self._check(project, self.environment)
        return self._version(model, version)

    def fetch_bundle(
        self,
        project: str,
        model: str,
        version: str | int | None,
        folder: str | os.PathLike[str],
    ) -> Path:
        """The baked bundle file of ``model`` ``version``, read in place (``folder`` unused:
        the baked folder is never written, and may be on a read-only filesystem)."""
        self._check(project, self.environment)
        return self.folder / self._version(model, version)["file"]

    def __repr__(self) -> str:
        return f"BakedRegistry({str(self.folder)!r})"
