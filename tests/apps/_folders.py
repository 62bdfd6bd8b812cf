"""App folders for the tests: what ``shipyard app create`` would write, made by hand here
(the template is another part's), small enough to read in a test."""

from __future__ import annotations

from pathlib import Path

CREATED_AT = "2026-12-01T09:30:00+00:00"
MAIN = b'''"""A tiny ASGI app: answers every request with its name."""


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"tumour_app"})
'''


def app_config(
    name: str = "tumour_app",
    version: str = "0.1.0",
    models: tuple[str, ...] = ("tumour_triage",),
    entry: str = "app.main:app",
) -> str:
    """The text of a shipyard-app.toml."""
    listed = ", ".join(f'"{m}"' for m in models)
    return (
        "[app]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
        'template = "web"\n'
        f'entry = "{entry}"\n'
        f"models = [{listed}]\n"
    )


def make_app(folder: Path, name: str = "tumour_app", version: str = "0.1.0") -> Path:
    """An app folder at ``folder``: config, an app package, requirements and a test."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shipyard-app.toml").write_text(app_config(name, version))
    (folder / "app").mkdir(exist_ok=True)
    (folder / "app" / "__init__.py").write_bytes(b"")
    (folder / "app" / "main.py").write_bytes(MAIN)
    (folder / "app" / "templates").mkdir(exist_ok=True)
    (folder / "app" / "templates" / "index.html").write_text("<h1>Tumour triage</h1>\n")
    (folder / "requirements.txt").write_text("# what the app needs beyond shipyard\njinja2>=3\n\n")
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / "test_app.py").write_text("def test_nothing():\n    assert True\n")
    return folder
