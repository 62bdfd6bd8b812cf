"""TLS and trusted proxies for ``shipyard serve`` and ``shipyard server`` (uvicorn's own).

A certificate and its key make the server answer HTTPS only. Behind a reverse proxy that
ends TLS, ``--trusted-proxies`` names the addresses whose X-Forwarded-For and
X-Forwarded-Proto headers are believed; from anyone else they are ignored (the default
trusts no one).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import typer

from ..errors import UsageError

TLS_CERT = typer.Option(
    None, "--tls-cert", help="PEM certificate (chain): serve HTTPS only (with --tls-key)."
)
TLS_KEY = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert.")
TRUSTED_PROXIES = typer.Option(
    "",
    "--trusted-proxies",
    help="Comma-separated addresses (or *) of reverse proxies whose X-Forwarded-* headers "
    "are believed (default: none).",
)


def server_options(cert: Path | None, key: Path | None, proxies: str) -> dict[str, Any]:
    """uvicorn's settings for TLS and forwarded headers; UsageError names a bad file.

    The certificate and key are loaded here, so a wrong pair fails before the server
    starts listening instead of at the first client.
    """
    options: dict[str, Any] = {
        "proxy_headers": bool(proxies.strip()),
        "forwarded_allow_ips": proxies.strip() or "",
    }
    if (cert is None) != (key is None):
        raise UsageError("give --tls-cert and --tls-key together")
    if cert is not None and key is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except FileNotFoundError as exc:
            raise UsageError(f"cannot read TLS file '{exc.filename}': it does not exist") from None
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(
                f"--tls-cert '{cert}' and --tls-key '{key}' do not make a usable pair ({exc})"
            ) from None
        options.update(ssl_certfile=str(cert), ssl_keyfile=str(key))
    return options


def scheme(options: dict[str, Any]) -> str:
    """``https`` when ``options`` serve TLS, else ``http``."""
    return "https" if "ssl_certfile" in options else "http"
