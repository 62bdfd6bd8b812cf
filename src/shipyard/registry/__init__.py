"""The registry service: projects, model versions, environments, promotion and audit.

    from shipyard.registry import Registry
    registry = Registry.open()                      # from SHIPYARD_* environment variables
    registry.create_project("demo")                 # integration -> uat -> production
    version = registry.register_model("demo", "dist/tumour_triage-1.0.0.tar.gz")
    registry.tag("demo", version.model, version.version_id)          # -> v1
    registry.add_component("demo", "integration", version.model)     # the default version
    registry.promote("demo", "integration")                          # into uat, atomically

Results are frozen dataclasses of JSON types (``to_json`` makes plain data of them);
errors are the ``RegistryError`` branch of ``shipyard.errors``. See docs/registry.md.
"""

from ..errors import (
    AuditBroken,
    Conflict,
    InvalidComponentConfig,
    InvalidInput,
    InvalidSetting,
    NotFound,
    PermissionDenied,
    RegistryError,
    StoreError,
)
from ._anchors import ANCHORS_ENV, FolderWitness, S3Witness, Witness, open_witness
from ._api import RegistryAPI
from ._batch_rules import batch_formats, rejects_location
from ._credentials import Credential
from ._db import MAX_ID, create_engine, database_url, migrate, schema_revision, shipyard_home
from ._llm_config import SECRETS_ROOT_ENV, check_llm_config, llm_endpoint, secrets_root
from ._lookup import NAME as NAME_PATTERN
from ._registry import DEFAULT_ENVIRONMENTS, ROLES, Registry
from ._roots import BATCH_ROOTS_ENV, CAPTURE_ROOT_ENV, Roots, batch_roots, capture_root
from ._settings import DEFAULTS as SETTING_DEFAULTS
from ._signing import LoadPolicy, key_ring
from ._store import ArtifactStore, LocalStore, S3Store, open_store
from ._tokens import scope_refusal
from ._types import (
    ApiKey,
    ApiKeyDigest,
    ApiToken,
    Approval,
    AuditAnchor,
    AuditEntry,
    AuditReport,
    BatchJob,
    ChangeRequest,
    ComponentDiff,
    ComponentStatus,
    DeployedComponent,
    Deployment,
    Diff,
    EffectiveSetting,
    Environment,
    EnvironmentStatus,
    FileDiff,
    Model,
    ModelVersion,
    Project,
    Revision,
    TrustedKey,
    ValueDiff,
    WorkerGroup,
    to_json,
)
from ._yaml import load as load_yaml

__all__ = [
    "RegistryAPI",
    "LoadPolicy",
    "key_ring",
    "ANCHORS_ENV",
    "BATCH_ROOTS_ENV",
    "CAPTURE_ROOT_ENV",
    "Roots",
    "batch_roots",
    "capture_root",
    "SECRETS_ROOT_ENV",
    "check_llm_config",
    "llm_endpoint",
    "secrets_root",
    "load_yaml",
    "scope_refusal",
    "AuditAnchor",
    "FolderWitness",
    "S3Witness",
    "Witness",
    "open_witness",
    "DEFAULT_ENVIRONMENTS",
    "MAX_ID",
    "NAME_PATTERN",
    "ROLES",
    "SETTING_DEFAULTS",
    "ApiKey",
    "ApiKeyDigest",
    "ApiToken",
    "TrustedKey",
    "Approval",
    "ChangeRequest",
    "ArtifactStore",
    "AuditBroken",
    "AuditEntry",
    "AuditReport",
    "BatchJob",
    "ComponentDiff",
    "ComponentStatus",
    "Conflict",
    "Credential",
    "DeployedComponent",
    "Deployment",
    "Diff",
    "EffectiveSetting",
    "Environment",
    "EnvironmentStatus",
    "FileDiff",
    "InvalidComponentConfig",
    "InvalidInput",
    "InvalidSetting",
    "LocalStore",
    "Model",
    "ModelVersion",
    "NotFound",
    "PermissionDenied",
    "Project",
    "Registry",
    "RegistryError",
    "Revision",
    "S3Store",
    "StoreError",
    "ValueDiff",
    "WorkerGroup",
    "batch_formats",
    "create_engine",
    "database_url",
    "migrate",
    "open_store",
    "rejects_location",
    "schema_revision",
    "shipyard_home",
    "to_json",
]
