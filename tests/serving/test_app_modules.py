"""Two app folders that both name their package ``app`` import side by side, each its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shipyard.errors import UsageError
from shipyard.serving._app_modules import AppModules


def write(folder: Path, label: str) -> Path:
    """An app folder using every way an app imports its own code."""
    (folder / "app" / "sub").mkdir(parents=True)
    (folder / "app" / "__init__.py").write_text("")
    (folder / "app" / "util.py").write_text(f"LABEL = {label!r}\n")
    (folder / "app" / "sub" / "__init__.py").write_text("")
    (folder / "app" / "sub" / "deep.py").write_text("from app.util import LABEL as DEEP\n")
    (folder / "app" / "sub" / "late.py").write_text(f"LATE = 'late {label}'\n")
    (folder / "helpers.py").write_text(f"HELPER = 'helper {label}'\n")
    (folder / "app" / "main.py").write_text(
        "import app.util\n"
        "from app.util import LABEL\n"
        "from . import util as relative\n"
        "from .sub import deep\n"
        "import helpers\n"
        "\n"
        "def late():\n"
        "    import app.sub.late as late  # imported on first call, long after loading\n"
        "    return late.LATE\n"
        "\n"
        "answer = (LABEL, app.util.LABEL, relative.LABEL, deep.DEEP, helpers.HELPER, late)\n"
    )
    return folder


def test_each_folder_imports_its_own_app_package(tmp_path: Path) -> None:
    one = AppModules(write(tmp_path / "one", "one"))
    two = AppModules(write(tmp_path / "two", "two"))
    first, second = one.load("app.main:answer"), two.load("app.main:answer")
    assert first[:5] == ("one", "one", "one", "one", "helper one")
    assert second[:5] == ("two", "two", "two", "two", "helper two")
    assert (first[5](), second[5]()) == ("late one", "late two")
    # Nothing took the names themselves: a third app, or a library called app, is unaffected.
    assert "app" not in sys.modules and "helpers" not in sys.modules
    one.unload()
    assert not [name for name in sys.modules if name.partition(".")[0] == one.package]
    assert second[5]() == "late two"
    two.unload()


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("app.main", "does not read module:attribute"),
        ("app.main:", "does not read module:attribute"),
        ("os:path", "the app's folder has no module 'os'"),
        ("../x:y", "does not read module:attribute"),
    ],
)
def test_an_entry_outside_the_folder_is_refused(tmp_path: Path, entry: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        AppModules(write(tmp_path / "one", "one")).load(entry)
