"""The public surface of shipyard.registry, and JSON-ready results."""

from __future__ import annotations

import json

import shipyard.registry as registry_package
from shipyard.errors import ShipyardError
from shipyard.registry import (
    AuditBroken,
    Conflict,
    InvalidInput,
    InvalidSetting,
    NotFound,
    PermissionDenied,
    Registry,
    RegistryError,
    StoreError,
    to_json,
)
from shipyard.web import http_status

from .conftest import MODEL


def test_the_public_names_change_only_on_purpose() -> None:
    assert sorted(registry_package.__all__) == sorted(
        [
            "DEFAULT_ENVIRONMENTS",
            "MAX_ID",
            "NAME_PATTERN",
            "ROLES",
            "SETTING_DEFAULTS",
            "ANCHORS_ENV",
            "AuditAnchor",
            "FolderWitness",
            "S3Witness",
            "TrustedKey",
            "Witness",
            "open_witness",
            "LoadPolicy",
            "key_ring",
            "RegistryAPI",
            "ApiKey",
            "ApiKeyDigest",
            "ApiToken",
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
            "Approval",
            "BATCH_ROOTS_ENV",
            "CAPTURE_ROOT_ENV",
            "ChangeRequest",
            "Roots",
            "batch_roots",
            "capture_root",
            "SECRETS_ROOT_ENV",
            "check_llm_config",
            "llm_endpoint",
            "secrets_root",
            "load_yaml",
            "scope_refusal",
            "Deployment",
        ]
    )


def test_errors_carry_exit_codes_and_http_statuses() -> None:
    assert issubclass(RegistryError, ShipyardError)
    expected = {
        NotFound: (1, 404),
        Conflict: (1, 409),
        InvalidInput: (2, 422),
        InvalidSetting: (2, 422),
        PermissionDenied: (1, 403),
        AuditBroken: (1, 409),
        StoreError: (1, 502),
    }
    assert {e: (e.exit_code, http_status(e)) for e in expected} == expected


def test_results_are_json_ready(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL)
    demo.create_worker_group("cpu", "cpu-2-8gb", 1)
    results = [
        demo.list_projects(),
        demo.list_models("demo"),
        demo.versions("demo", MODEL),
        demo.list_environments("demo"),
        demo.status("demo", "integration"),
        demo.history("demo", "integration"),
        demo.diff("demo", "integration", "uat"),
        demo.get_settings("demo", "integration", MODEL),
        demo.list_worker_groups(),
        demo.audit_list(limit=3),
        demo.audit_verify(),
    ]
    data = json.loads(json.dumps(to_json(results)))
    assert data[4]["components"][0]["settings"]["replicas"] == {
        "key": "replicas",
        "value": 1,
        "level": "default",
        "inherited": True,
    }
