"""Importing an app's code under a private package name, so that two apps never share a module.

Every app folder names its code alike (``app/main.py``, entry ``app.main:app``), and one
server imports several apps, and two versions of one app while it swaps. Putting each
folder on ``sys.path`` would make the second ``app`` package the first one. So the
folder becomes the package ``shipyard_app_N`` (a number per import, never reused) and the
entry ``app.main`` is imported as ``shipyard_app_N.app.main``:

* relative imports (``from .models import x``) work unchanged;
* absolute imports of the folder's own top-level names (``from app.models import x``,
  ``import helpers`` for a ``helpers.py`` beside ``app/``) work too: each module of the
  app runs with an ``__import__`` of its own that maps those names into its package;
* anything else (the standard library, installed libraries, ``shipyard.client``) is
  imported as usual, once for every app.

The limit: code that imports the app's modules by name at run time without an ``import``
statement (``importlib.import_module("app.x")``, Jinja2's ``PackageLoader("app")``,
``StaticFiles(packages=["app"])``) does not find them; name files by path from
``__file__`` instead (``Path(__file__).parent / "templates"``). Nothing is added to
``sys.path``, and the folder is never imported before its bundle was verified.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import UsageError

PREFIX = "shipyard_app_"  # what _logs strips from logger names
_numbers = itertools.count(1)


def top_level_names(folder: Path) -> frozenset[str]:
    """The names the folder's code may import absolutely: its packages (folders) and modules."""
    names = set()
    for entry in folder.iterdir():
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
    return frozenset(names)


class _Loader(importlib.machinery.SourceFileLoader):
    """A source module of an app, run with the app's own ``__builtins__`` (its ``__import__``)."""

    def __init__(self, fullname: str, path: str, app_builtins: dict[str, Any]) -> None:
        super().__init__(fullname, path)
        self._builtins = app_builtins

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__["__builtins__"] = self._builtins
        super().exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules of every imported app (``shipyard_app_N.…``) in its folder."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}  # package name -> the app's builtins

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package = fullname.partition(".")[0]
        app_builtins = self.apps.get(package)
        if app_builtins is None or package == fullname:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            assert spec.origin is not None
            spec.loader = _Loader(fullname, spec.origin, app_builtins)
        return spec


_finder = _Finder()
_lock = threading.Lock()


def _install() -> None:
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def _app_import(package: str, names: frozenset[str]) -> Any:
    """An ``__import__`` that reads ``import app.x`` as ``import PACKAGE.app.x``."""
    real_import = builtins.__import__

    def app_import(
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        top = name.partition(".")[0]
        if level != 0 or top not in names:
            return real_import(name, globals, locals, fromlist or (), level)
        module = real_import(f"{package}.{name}", globals, locals, fromlist or (), 0)
        # ``import app.x`` binds ``app``: the app's package, not the private one above it.
        return module if fromlist else sys.modules[f"{package}.{top}"]

    return app_import


class AppModules:
    """The code of one app folder, importable under its own private package name.

    ``load(entry)`` imports ``module:attribute`` and returns the attribute; ``unload()``
    forgets every module imported from the folder (the folder itself is the caller's).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.package = f"{PREFIX}{next(_numbers)}"
        self.names = top_level_names(folder)
        spec = importlib.machinery.ModuleSpec(self.package, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        self._root = importlib.util.module_from_spec(spec)
        self._builtins = {**vars(builtins), "__import__": _app_import(self.package, self.names)}

    def load(self, entry: str) -> Any:
        """The object ``entry`` (``module:attribute``, module relative to the folder) names.

        Raises UsageError for an entry that does not read ``module:attribute`` or names a
        module outside the folder, and whatever importing the module raises.
        """
        module_name, _, attribute = entry.partition(":")
        parts = module_name.split(".")
        if not attribute or not all(p.isidentifier() for p in [*parts, *attribute.split(".")]):
            raise UsageError(f"entry {entry!r} does not read module:attribute (app.main:app)")
        if parts[0] not in self.names:
            raise UsageError(f"entry {entry!r}: the app's folder has no module {parts[0]!r}")
        _install()
        with _lock:
            sys.modules[self.package] = self._root
            _finder.apps[self.package] = self._builtins
        found: Any = importlib.import_module(f"{self.package}.{module_name}")
        for name in attribute.split("."):
            found = getattr(found, name)
        return found

    def unload(self) -> None:
        """Forget the app's modules (objects still referenced keep working)."""
        with _lock:
            _finder.apps.pop(self.package, None)
            for name in [n for n in sys.modules if n.partition(".")[0] == self.package]:
                del sys.modules[name]
            folder = str(self.folder)
            for path in [p for p in sys.path_importer_cache if p.startswith(folder)]:
                del sys.path_importer_cache[path]
