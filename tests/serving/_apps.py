"""App folders for the serving tests, written by hand (the templates are another part's).

Each app is a small Starlette app named ``app`` (as every app folder names its package):
``/health``, ``/predict`` (calls the environment's ``tumour_triage`` through
``shipyard.client``, from a thread: the client blocks), ``/config`` (its app and
environment config), ``/fail`` (raises), and a log line on every prediction.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.apps import build_app_bundle

CREATED_AT = "2026-12-01T09:30:00+00:00"

MAIN = '''"""A small app of the serving tests."""

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import LABEL  # an absolute import of the app's own package
from shipyard import client

from .models import MODEL  # and a relative one

log = logging.getLogger(__name__)


async def health(request):
    return JSONResponse({"status": "ok", "label": LABEL, "app": client.context().app})


async def predict(request):
    rows = await request.json()
    # client.predict blocks: call it from a thread, so the server answers it meanwhile.
    answers = await run_in_threadpool(client.predict, MODEL, rows)
    log.info("scored %d rows with %s", len(rows), MODEL)
    return JSONResponse({"answers": answers})


def config(request):
    return JSONResponse({"app": client.app_config(), "environment": client.environment_config()})


def fail(request):
    raise RuntimeError("the app broke on purpose")


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/predict", predict, methods=["POST"]),
        Route("/config", config),
        Route("/fail", fail),
    ]
)
'''


def write_app(
    folder: Path,
    name: str,
    version: str = "0.1.0",
    label: str | None = None,
    main: str = MAIN,
    init_extra: str = "",
) -> Path:
    """An app folder at ``folder``: ``app/__init__.py`` says ``LABEL`` (default: the name)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shipyard-app.toml").write_text(
        "[app]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
        'template = "web"\n'
        'entry = "app.main:app"\n'
        'models = ["tumour_triage"]\n'
    )
    package = folder / "app"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(f"LABEL = {label or name!r}\n{init_extra}")
    (package / "models.py").write_text('MODEL = "tumour_triage"\n')
    (package / "main.py").write_text(main)
    (folder / "requirements.txt").write_text("starlette\n")
    return folder


def app_bundle(folder: Path, out: Path, key: Path, **kwargs: str) -> Path:
    """A signed bundle of a new app folder (``write_app``'s arguments)."""
    return build_app_bundle(write_app(folder, **kwargs), out, sign_key=key, created_at=CREATED_AT)
