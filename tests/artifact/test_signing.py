"""Signing: a bundle is trusted only with the right key; keys are kept safe; export is atomic."""

from __future__ import annotations

import json
import random
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import shipyard
from shipyard.artifact import generate_key_pair, sign_files, write_bundle
from shipyard.errors import SignatureError, UsageError
from shipyard.pipeline import compile_files
from shipyard.pipeline._compile import archive_mtime
from shipyard.runtime import _ed25519
from tests.pipeline.test_flavors import CASES

ENV = "SHIPYARD_PUBLIC_KEY"


@pytest.fixture(autouse=True)
def no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture(scope="module")
def other_key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("other-keys"))


@pytest.fixture(scope="module")
def unsigned_bundle(
    tmp_path_factory: pytest.TempPathFactory, demo_pipeline: shipyard.Pipeline
) -> Path:
    return demo_pipeline.export(tmp_path_factory.mktemp("unsigned"))


def test_the_right_key_verifies_in_every_accepted_form(
    signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    pem = key_pair[1].read_bytes()
    raw = Ed25519PublicKey.from_public_bytes(_ed25519.public_key_from_pem(pem)).public_bytes_raw()
    for key in (key_pair[1], str(key_pair[1]), pem, pem.decode(), raw):
        report = shipyard.Artifact(signed_bundle).verify(key)
        assert report["signature_checked"] is True


def test_the_wrong_key_is_a_signature_error(
    signed_bundle: Path, other_key_pair: tuple[Path, Path], demo_rows: dict[str, Any]
) -> None:
    with pytest.raises(SignatureError, match="signed by another key"):
        shipyard.Artifact(signed_bundle).verify(other_key_pair[1])
    with pytest.raises(SignatureError):
        shipyard.Artifact(signed_bundle, public_key=other_key_pair[1]).run(demo_rows)


def test_an_unsigned_bundle_is_refused_when_a_key_is_configured(
    unsigned_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    assert shipyard.Artifact(unsigned_bundle).verify()["signed"] is False
    with pytest.raises(SignatureError, match="was not signed"):
        shipyard.Artifact(unsigned_bundle).verify(key_pair[1])


@pytest.mark.parametrize("form", ["path", "pem"])
def test_the_public_key_environment_variable_is_honoured(
    signed_bundle: Path,
    unsigned_bundle: Path,
    key_pair: tuple[Path, Path],
    other_key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    form: str,
) -> None:
    def configure(public: Path) -> None:
        monkeypatch.setenv(ENV, str(public) if form == "path" else public.read_text())

    configure(key_pair[1])
    assert shipyard.Artifact(signed_bundle).verify()["signature_checked"] is True
    with pytest.raises(SignatureError, match="was not signed"):
        shipyard.Artifact(unsigned_bundle).verify()
    configure(other_key_pair[1])
    with pytest.raises(SignatureError, match="another key"):
        shipyard.Artifact(signed_bundle).verify()


def test_an_unreadable_configured_key_is_a_signature_error(
    signed_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "missing.pub"))
    with pytest.raises(SignatureError, match="cannot read public key"):
        shipyard.Artifact(signed_bundle).verify()
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SignatureError, match="bad public key"):
        shipyard.Artifact(signed_bundle).verify(garbage)


# --- the pure-Python verifier (used where `cryptography` is not installed) ---

RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
    "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_the_pure_python_verifier_passes_rfc8032_test_vector_1() -> None:
    public, signature = bytes.fromhex(RFC8032_PUBLIC), bytes.fromhex(RFC8032_SIGNATURE)
    assert _ed25519.verify(public, signature, b"") is True
    assert _ed25519.verify(public, signature, b"\x00") is False
    flipped = signature[:40] + bytes([signature[40] ^ 0x80]) + signature[41:]
    assert _ed25519.verify(public, flipped, b"") is False


def _flip_bit(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return b"\x01"
    bit = rng.randrange(len(data) * 8)
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def _cryptography_verifies(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def test_the_pure_python_verifier_agrees_with_cryptography() -> None:
    rng = random.Random(8032)
    answers = []
    for case in range(50):
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        message = rng.randbytes(rng.randrange(0, 300))
        signature = private.sign(message)
        damage = case % 5  # 0: intact; 1-4: one bit flipped in R, in S, in the message, in the key
        if damage == 1:
            signature = _flip_bit(signature[:32], rng) + signature[32:]
        elif damage == 2:
            signature = signature[:32] + _flip_bit(signature[32:], rng)
        elif damage == 3:
            message = _flip_bit(message, rng)
        elif damage == 4:
            public = _flip_bit(public, rng)
        expected = _cryptography_verifies(public, signature, message)
        assert _ed25519.verify(public, signature, message) is expected, (case, damage)
        answers.append(expected)
    assert answers.count(True) == 10  # the intact ones, and only those
    assert public  # keep the last key alive for the assertion message


def test_the_pure_python_verifier_rejects_malformed_input() -> None:
    private = Ed25519PrivateKey.generate()
    public, signature = private.public_key().public_bytes_raw(), private.sign(b"m")
    assert _ed25519.verify(public, signature, b"m") is True
    assert _ed25519.verify(public[:31], signature, b"m") is False
    assert _ed25519.verify(public, signature[:63], b"m") is False
    # S + L (the group order) is the same scalar mod L: it must be refused, not accepted.
    s = int.from_bytes(signature[32:], "little") + _ed25519._Q
    assert s < 2**256
    assert _ed25519.verify(public, signature[:32] + s.to_bytes(32, "little"), b"m") is False


# --- keys ---


def test_key_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    private, public = generate_key_pair(tmp_path)
    before = private.read_bytes(), public.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        generate_key_pair(tmp_path)
    public.unlink()
    with pytest.raises(UsageError, match="already exists"):
        generate_key_pair(tmp_path)  # the private key alone is enough to refuse
    assert private.read_bytes() == before[0]


def test_key_generate_writes_the_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    private, public = generate_key_pair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    assert b"PUBLIC KEY" in public.read_bytes()


def test_key_generate_with_overwrite_still_makes_the_private_key_owner_only(tmp_path: Path) -> None:
    private, _ = generate_key_pair(tmp_path)
    old = private.read_bytes()
    private.chmod(0o644)  # e.g. after a careless copy
    generate_key_pair(tmp_path, overwrite=True)
    assert private.read_bytes() != old
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def _pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "not an Ed25519 key",
        ),
        (_pem(ec.generate_private_key(ec.SECP256R1())), "not an Ed25519 key"),
        (b"garbage, not a key\n", "not an unencrypted PEM private key"),
        (
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            "not an unencrypted PEM private key",
        ),
        (None, "cannot read signing key"),
    ],
    ids=["rsa", "ec", "garbage", "encrypted", "missing-file"],
)
def test_export_with_a_bad_signing_key_fails_before_writing_anything(
    demo_pipeline: shipyard.Pipeline, tmp_path: Path, key: bytes | None, message: str
) -> None:
    key_file = tmp_path / "signing.key"
    if key is not None:
        key_file.write_bytes(key)
    out = tmp_path / "dist"
    with pytest.raises(SignatureError, match=message):
        demo_pipeline.export(out, sign_key=key_file)
    assert not out.exists()


def test_a_failed_export_leaves_the_previous_bundle_and_no_temporary_file(
    demo_pipeline: shipyard.Pipeline,
    demo_reference: dict[str, Any],
    tmp_path: Path,
) -> None:
    first = demo_pipeline.export(tmp_path)
    before = first.read_bytes()
    bad_reference = {"tumours": {"mean_area": [-1.0]}}  # misses columns and breaks min=0
    with pytest.raises(shipyard.errors.SchemaError):
        demo_pipeline.export(tmp_path, reference=bad_reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]
    assert first.read_bytes() == before


def test_an_export_that_cannot_be_written_leaves_no_temporary_file(
    demo_pipeline: shipyard.Pipeline, tmp_path: Path
) -> None:
    target = tmp_path / f"{demo_pipeline.name}-{demo_pipeline.version}.tar.gz"
    target.mkdir()  # the final rename cannot replace a folder
    with pytest.raises(OSError):
        demo_pipeline.export(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.is_dir() and list(target.iterdir()) == []


# The suite's tumour pipeline, then one pipeline per model flavor (tests/pipeline/test_flavors.py).
BUILDS = ["tumour_triage", *CASES]


@pytest.mark.parametrize("backend", ["native", "auto"])
@pytest.mark.parametrize("build", BUILDS)
def test_two_builds_with_the_same_created_at_are_byte_identical(
    build: str,
    backend: str,
    demo_pipeline: shipyard.Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    # "auto" with reference data stores every model that converts as ONNX; "native" keeps
    # each flavor's own file (model.skops, model.json, model.txt, model.onnx, .py, .pkl).
    if build == "tumour_triage":
        pipeline, reference = demo_pipeline, demo_reference
    else:
        case = CASES[build](tmp_path)
        pipeline, reference = case.pipeline, case.reference
    builds, bundles = [], []
    for index in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model kept native or stored as a pickle says so
            files = compile_files(pipeline, reference, created_by="ci", backend=backend)
        metadata = json.loads(files["metadata.json"])
        files["metadata.json"] = files["metadata.json"].replace(
            metadata["created_at"].encode(), b"2024-01-02T03:04:05+00:00"
        )
        signed = sign_files(files, key_pair[0])
        path = tmp_path / f"{index}.tar.gz"
        builds.append(signed)
        bundles.append(write_bundle(pipeline.bundle_name, signed, path, archive_mtime(signed)))
    assert [name for name in builds[0] if builds[0][name] != builds[1].get(name)] == []
    assert bundles[0].read_bytes() == bundles[1].read_bytes()
    assert shipyard.Artifact(bundles[0]).verify(key_pair[1])["signature_checked"] is True
