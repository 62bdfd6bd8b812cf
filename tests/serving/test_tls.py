"""TLS: ``shipyard serve`` and ``shipyard server`` answer HTTPS with a given certificate and
key (uvicorn's own TLS), checked against a self-signed certificate made here."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ._hold import wait_until
from .conftest import free_socket


def _certificate(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def _https(subcommand: list[str], cert: Path, env: dict[str, str]) -> Iterator[str]:
    """``shipyard SUBCOMMAND --port P`` until its /health answers over HTTPS; its URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    process = subprocess.Popen(
        [shipyard, *subcommand, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, f"shipyard {subcommand[0]} exited with {process.returncode}"
        try:
            return httpx.get(url + "/health", verify=str(cert), timeout=5).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, f"shipyard {subcommand[0]} answers over HTTPS", timeout=120)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_serve_answers_https_only_with_the_given_certificate(
    signed_bundle: Path, tmp_path: Path, demo_rows: dict
) -> None:
    cert, key = _certificate(tmp_path)
    args = ["serve", "--bundle", str(signed_bundle), "--tls-cert", str(cert), "--tls-key", str(key)]
    with _https(args, cert, {"SHIPYARD_HOME": str(tmp_path / "home")}) as url:
        ready = httpx.get(url + "/v2/health/ready", verify=str(cert), timeout=10)
        assert ready.status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP gets no answer it can read
            httpx.get(url.replace("https", "http") + "/health", timeout=10)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust it refuses
            httpx.get(url + "/health", timeout=10)


def test_server_answers_https_and_a_mismatched_key_is_refused_before_listening(
    tmp_path: Path,
) -> None:
    cert, key = _certificate(tmp_path)
    other_key = _certificate(tmp_path, "other")[1]
    env = {"SHIPYARD_HOME": str(tmp_path / "home")}
    with _https(["server", "--tls-cert", str(cert), "--tls-key", str(key)], cert, env) as url:
        assert httpx.get(url + "/health", verify=str(cert), timeout=10).json() == {"status": "ok"}
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    refused = subprocess.run(
        [shipyard, "server", "--tls-cert", str(cert), "--tls-key", str(other_key)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "do not make a usable pair" in refused.stderr
    assert "Traceback" not in refused.stderr
