"""``Registry``: the registry service, one mixin per concept over one transaction core.

Each concept lives in its own module (projects, model versions, environments, components,
settings, worker groups, promotion, audit, tokens, API keys, trusted keys, batch jobs,
deployments);
``RegistryCore`` in ``_core`` holds the transactions, the audit record of each change and
the revision writer they share.
"""

from __future__ import annotations

from ._api_keys import ApiKeysMixin
from ._audit_ops import AuditMixin
from ._batch_jobs import BatchJobsMixin
from ._components import ComponentsMixin
from ._core import DEFAULT_ENVIRONMENTS
from ._deployments import DeploymentsMixin
from ._drift import DriftMixin
from ._environments import EnvironmentsMixin
from ._model_versions import ModelsMixin
from ._projects import ProjectsMixin
from ._promotion import PromotionMixin
from ._settings_ops import SettingsMixin
from ._token_ops import TokensMixin
from ._tokens import ROLES
from ._trusted_keys import TrustedKeysMixin
from ._worker_groups import WorkerGroupsMixin

__all__ = ["DEFAULT_ENVIRONMENTS", "ROLES", "Registry"]


class Registry(
    ProjectsMixin,
    ModelsMixin,
    EnvironmentsMixin,
    ComponentsMixin,
    SettingsMixin,
    WorkerGroupsMixin,
    PromotionMixin,
    AuditMixin,
    TokensMixin,
    ApiKeysMixin,
    TrustedKeysMixin,
    BatchJobsMixin,
    DriftMixin,
    DeploymentsMixin,
):
    """The model registry and control plane over one database and one artifact store.

    Build it with an engine (see ``shipyard.registry.create_engine``; the schema must be
    migrated), a store and the name of the actor recorded in revisions and audit events;
    ``Registry.open()`` does all three from the environment. Safe to share between
    threads. Errors: NotFound, Conflict, InvalidInput (InvalidSetting,
    InvalidComponentConfig), PermissionDenied, AuditBroken, StoreError, and the runtime's
    ArtifactError for a bundle that fails verification.
    """
