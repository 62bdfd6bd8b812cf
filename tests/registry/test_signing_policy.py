"""Trusted keys and the signature policy: production holds only what a trusted key signed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shipyard.artifact import generate_key_pair
from shipyard.errors import Conflict, InvalidInput, NotFound, PermissionDenied, SignatureRequired
from shipyard.registry import Registry

from .._hostile_bundles import rewrite, with_file, without
from .conftest import MODEL


@pytest.fixture()
def unsigned(bundles: list[Path], tmp_path: Path) -> Path:
    """The demo bundle 1.0.0 with its MANIFEST.sig removed."""
    return rewrite(bundles[0], tmp_path / "unsigned.tar.gz", without("MANIFEST.sig"))


def register(registry: Registry, bundle: Path) -> str:
    version = registry.register_model("demo", bundle)
    return registry.tag("demo", version.model, version.version_id).tag or ""


def test_an_unsigned_bundle_registers_and_moves_until_the_end_of_the_chain(
    registry: Registry, unsigned: Path
) -> None:
    registry.create_project("demo")
    version = registry.register_model("demo", unsigned)
    assert (version.signed, version.signer_key_id) == (False, None)
    registry.tag("demo", MODEL, version.version_id)
    registry.add_component("demo", "integration", MODEL, "v1")
    registry.promote("demo", "integration")  # into uat: no policy there by default
    with pytest.raises(SignatureRequired) as refused:
        registry.promote("demo", "uat")
    message = str(refused.value)
    assert "environment 'production'" in message
    assert f"{MODEL} v1: it is unsigned" in message
    assert registry.list_components("demo", "production") == []
    with pytest.raises(SignatureRequired, match="it is unsigned"):
        registry.add_component("demo", "production", MODEL, "v1")
    with pytest.raises(SignatureRequired, match="it is unsigned"):
        registry.apply_component_config(
            "demo", "production", f"components:\n  - name: {MODEL}\n    version: v1\n"
        )


def test_a_trusted_signature_is_recorded_and_passes(registry: Registry, bundles: list) -> None:
    registry.create_project("demo")
    version = registry.register_model("demo", bundles[0])
    key = registry.list_trusted_keys()[0]
    assert (version.signed, version.signer_key_id) == (True, key.key_id)
    registry.tag("demo", MODEL, version.version_id)
    revision = registry.add_component("demo", "production", MODEL, "v1")
    assert [c.tag for c in revision.components] == ["v1"]


def test_a_signature_by_an_unknown_key_or_a_garbage_one_is_not_signed(
    bare_registry: Registry, bundles: list, tmp_path: Path
) -> None:
    registry = bare_registry
    registry.create_project("demo")
    other = generate_key_pair(tmp_path / "other")[1]
    registry.trust_key("other", other.read_text())
    version = registry.register_model("demo", bundles[0])
    assert (version.signed, version.signer_key_id) == (False, None)
    garbage = base64.b64encode(b"\x01" * 64) + b"\n"
    bad = rewrite(bundles[1], tmp_path / "garbage.tar.gz", with_file("MANIFEST.sig", garbage))
    assert registry.register_model("demo", bad).signed is False
    registry.tag("demo", MODEL, version.version_id)
    with pytest.raises(SignatureRequired, match="signed by a key the registry does not trust"):
        registry.add_component("demo", "production", MODEL, "v1")


def test_a_key_trusted_after_registration_counts(
    bare_registry: Registry, bundles: list, key_pair: tuple[Path, Path]
) -> None:
    registry = bare_registry
    registry.create_project("demo")
    register(registry, bundles[0])
    with pytest.raises(SignatureRequired):
        registry.add_component("demo", "production", MODEL, "v1")
    registry.trust_key("late", key_pair[1].read_text())
    assert [c.tag for c in registry.add_component("demo", "production", MODEL, "v1").components]


def test_a_revoked_key_refuses_new_versions_but_blocks_nothing_else(
    registry: Registry, bundles: list
) -> None:
    registry.create_project("demo")
    register(registry, bundles[0])
    register(registry, bundles[1])
    registry.add_component("demo", "production", MODEL, "v1")
    revoked = registry.revoke_trusted_key("test-key")
    assert revoked.revoked and revoked.revoked_by == "alice"
    with pytest.raises(SignatureRequired, match=r"v2: the key that signed it \(\w+\) has been"):
        registry.add_component("demo", "production", MODEL, "v2")
    # What production already holds stays, and unrelated changes still apply.
    registry.set_environment_config("demo", "production", {"reports": "/srv/reports"})
    assert [c.tag for c in registry.list_components("demo", "production")] == ["v1"]
    actions = [e.action for e in registry.audit_list()]
    assert actions.count("key.revoke") == 1 and actions[-1] == "key.trust"


def test_the_policy_is_a_setting_that_only_admins_change(
    registry: Registry, unsigned: Path
) -> None:
    registry.create_project("demo")
    register(registry, unsigned)
    assert registry.get_setting("require_signature", "demo", "production").value == "auto"
    deployer = registry.with_actor("dan", "deployer")
    with pytest.raises(PermissionDenied, match="require_signature' needs the admin role"):
        deployer.set_setting("require_signature", "false", "demo", "production")
    with pytest.raises(PermissionDenied, match="allow_pickle' needs the admin role"):
        deployer.set_setting("allow_pickle", "true", "demo", "production")
    with pytest.raises(PermissionDenied, match="global setting needs the admin role"):
        deployer.set_setting("replicas", 2)
    registry.set_setting("require_signature", "false", "demo", "production")
    registry.add_component("demo", "production", MODEL, "v1")
    # Turned on for integration, the policy guards it too.
    registry.set_setting("require_signature", "true", "demo", "integration")
    with pytest.raises(SignatureRequired, match="environment 'integration'"):
        deployer.add_component("demo", "integration", MODEL, "v1")
    with pytest.raises(InvalidInput, match="require_signature"):
        registry.set_setting("require_signature", "maybe", "demo")


def test_trusting_keys_needs_admin_and_refuses_duplicates_and_junk(
    registry: Registry, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    pem = generate_key_pair(tmp_path / "k")[1].read_text()
    with pytest.raises(PermissionDenied, match="trusting a signing key needs the admin role"):
        registry.with_actor("dan", "deployer").trust_key("k", pem)
    with pytest.raises(Conflict, match="already trusted as 'test-key'"):
        registry.trust_key("again", key_pair[1].read_text())
    with pytest.raises(Conflict, match="named 'test-key' is already trusted"):
        registry.trust_key("test-key", pem)
    with pytest.raises(InvalidInput, match="Ed25519 public key in PEM form"):
        registry.trust_key("junk", "hello")
    with pytest.raises(NotFound, match="no trusted key 'nope'"):
        registry.revoke_trusted_key("nope")
    added = registry.trust_key("k", pem)
    assert [k.name for k in registry.list_trusted_keys()] == ["test-key", "k"]
    assert registry.revoke_trusted_key(added.key_id).revoked


def test_a_deployer_reaches_a_promotion_target_only_through_promotion(
    registry: Registry, bundles: list
) -> None:
    registry.create_project("demo")
    register(registry, bundles[0])
    deployer = registry.with_actor("dan", "deployer")
    deployer.add_component("demo", "integration", MODEL, "v1")  # the chain's entry: anyone's
    with pytest.raises(PermissionDenied, match="'production' is filled by promotion from 'uat'"):
        deployer.add_component("demo", "production", MODEL, "v1")
    with pytest.raises(PermissionDenied, match="promote integration instead"):
        deployer.apply_component_config("demo", "uat", "components: []\n")
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        deployer.set_environment_config("demo", "production", {"capture": {"folder": "/etc"}})
    deployer.promote("demo", "integration")
    assert [c.tag for c in registry.list_components("demo", "uat")] == ["v1"]
    # A challenger is anyone's to try a change on.
    deployer.create_challenger("demo", "pr-1", "uat")
    deployer.remove_component("demo", "pr-1", MODEL)


def test_settings_have_bounds_and_http_integers_have_a_range(registry: Registry) -> None:
    from shipyard.registry_http._operations import convert

    registry.create_project("demo")
    with pytest.raises(InvalidInput, match="replicas': 30000 is above 1000"):
        registry.set_setting("replicas", "30000", "demo")
    with pytest.raises(InvalidInput, match="parameter 'token_id' is out of range"):
        convert("token_id", "9" * 19, int, text=True)
    with pytest.raises(InvalidInput, match="parameter 'limit' is out of range"):
        convert("limit", "9" * 5000, int, text=True)
