"""The registry the demo's steps find in ``WORKDIR/.shipyard``: project demo, the signed
bundle registered, tagged v1 and deployed to production, its key trusted, and production
needing one approval for every promotion or rollback (``approvals_required`` 1)."""

from __future__ import annotations

from pathlib import Path

from shipyard.demo._serve_step import open_registry
from shipyard.registry import create_engine, migrate


def production_registry(workdir: Path, bundle: Path, public_key: Path) -> None:
    """Set up the demo's registry in ``workdir`` as above (reopen it with open_registry)."""
    home = workdir / ".shipyard"
    migrate(create_engine(f"sqlite:///{home / 'registry.db'}"))
    with open_registry(workdir) as registry:
        registry.trust_key("demo", public_key.read_text())
        registry.create_project("demo")
        registry.set_setting("approvals_required", "1", "demo", "production")
        version = registry.register_model("demo", bundle)
        registry.tag("demo", version.model, version.version_id)
        registry.add_component("demo", "production", version.model)
