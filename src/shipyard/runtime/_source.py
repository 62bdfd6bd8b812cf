"""Run the source of a captured function (a feature, a rule, a Python model).

Copied into every bundle. The source was checked at export to read no global
other than the imports written at its top, so running it needs nothing else.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from ._errors import ModelError


def load_function(source: bytes, path: str, name: str) -> Callable[..., Any]:
    """Execute ``source`` in a fresh module and return its function ``name``.

    ``source`` must be the verified bytes of ``path``. Raises ModelError when it does not
    load or defines no such function.
    """
    module = types.ModuleType(f"shipyard_node_{name}")
    module.__file__ = path
    try:
        code = compile(source, path, "exec")
        exec(code, module.__dict__)  # noqa: S102 - verified against MANIFEST.json before this call
    except Exception as exc:
        raise ModelError(f"'{path}' could not be loaded: {exc}") from exc
    function = module.__dict__.get(name)
    if not callable(function):
        raise ModelError(f"'{path}' defines no function '{name}'")
    return function
