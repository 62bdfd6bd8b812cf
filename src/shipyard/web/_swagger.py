"""Swagger UI for the servers' ``/docs``, served from the installed package, never a CDN.

The pages must work on air-gapped hosts, so the two files the page needs come from the
npm package ``swagger-ui-dist`` at a pinned version, checked against its registry
integrity (sha512) and unpacked into this package's ``swagger-ui/`` folder at install
time (``make`` runs ``shipyard.web._swagger.main``; the files are not kept in git).
Without them ``/docs`` says so and links the OpenAPI document instead of loading anything
from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "5.35.0"
INTEGRITY = (  # npm view swagger-ui-dist@5.35.0 dist.integrity
    "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
)
ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}
FOLDER = Path(__file__).resolve().parent / "swagger-ui"
PREFIX = "/docs/assets/"


def asset(name: str) -> tuple[bytes, str] | None:
    """A vendored file's bytes and media type, or None (unknown name, or not installed)."""
    path = FOLDER / name
    if name not in ASSETS or not path.is_file():
        return None
    return path.read_bytes(), ASSETS[name]


def docs_page(title: str, openapi_url: str = "/openapi.json") -> str:
    """The ``/docs`` page: Swagger UI from this host, or a plain page when it is missing."""
    if not all((FOLDER / name).is_file() for name in ASSETS):
        return (
            f"<!doctype html><html><head><title>{title}</title></head><body>"
            f"<h1>{title}</h1><p>Swagger UI is not installed on this host "
            "(<code>make</code> installs it, with npm); the API is described "
            f'by <a href="{openapi_url}">{openapi_url}</a>.</p></body></html>'
        )
    return f"""<!doctype html>
<html><head><title>{title}</title><meta charset="utf-8">
<link rel="stylesheet" href="{PREFIX}swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{PREFIX}swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{openapi_url}", dom_id: "#swagger-ui"}});</script>
</body></html>"""


def install(folder: Path = FOLDER) -> Path:
    """Fetch swagger-ui-dist VERSION with npm, check its integrity, unpack the assets."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: /docs will link the OpenAPI document only")
    with tempfile.TemporaryDirectory(prefix="shipyard-swagger-") as scratch:
        subprocess.run(
            [npm, "pack", f"swagger-ui-dist@{VERSION}", "--silent"],
            cwd=scratch,
            check=True,
            capture_output=True,
            timeout=300,
        )
        packed = Path(scratch) / f"swagger-ui-dist-{VERSION}.tgz"
        data = packed.read_bytes()
    found = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if found != INTEGRITY:
        raise RuntimeError(f"swagger-ui-dist {VERSION} does not match its pinned integrity")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for name in (*ASSETS, "LICENSE", "NOTICE"):
            member = archive.extractfile(f"package/{name}")
            if member is not None:
                (folder / name).write_bytes(member.read())
    return folder


def main() -> None:
    """Install Swagger UI (make runs this); a warning, not a failure, without npm."""
    try:
        print(f"Swagger UI {VERSION} installed in {install()}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"warning: Swagger UI not installed ({exc})", file=sys.stderr)
