"""Capture a Python function's source so it can run inside a bundle.

A captured function may read its arguments, builtins, and modules of the
standard library or numpy (imported at the top of the user's module). Anything
else it reads from outside (a global variable, a helper function, a closure)
would not exist in the bundle, so capture refuses it and names it.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import CaptureError

_ALLOWED_TOP_LEVEL = set(sys.stdlib_module_names) | {"numpy"}


def _global_names(code: types.CodeType) -> Iterator[str]:
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield str(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _default_names(definition: ast.FunctionDef) -> Iterator[str]:
    """Names read by default values: the bundle evaluates them when it loads the source."""
    defaults = [*definition.args.defaults, *definition.args.kw_defaults]
    for expression in defaults:
        if expression is not None:
            for node in ast.walk(expression):
                if isinstance(node, ast.Name):
                    yield node.id


def _import_line(alias: str, value: Any, what: str) -> str:
    if isinstance(value, types.ModuleType):
        module = value.__name__
        if module.split(".")[0] not in _ALLOWED_TOP_LEVEL:
            raise CaptureError(
                f"{what} uses module '{module}' (as '{alias}'); a bundle's functions may use only "
                "the standard library and numpy"
            )
        return f"import {module}" if alias == module else f"import {module} as {alias}"
    module_name = getattr(value, "__module__", None) or ""
    owner = sys.modules.get(module_name)
    if (
        module_name.split(".")[0] in _ALLOWED_TOP_LEVEL
        and owner is not None
        and getattr(owner, getattr(value, "__name__", ""), None) is value
    ):
        name = str(getattr(value, "__name__", ""))
        return f"from {module_name} import {name}" + ("" if alias == name else f" as {alias}")
    raise CaptureError(
        f"{what} reads the global '{alias}', which will not exist in the bundle; "
        "define it inside the function or pass it through params={...}"
    )


def capture(function: Callable[..., Any], what: str) -> tuple[str, str]:
    """Return ``(source module text, function name)`` for ``function``.

    ``what`` names the node in error messages (e.g. "feature 'ratio'").
    Raises CaptureError for lambdas, closures, functions whose source is not
    available, and functions that read globals a bundle would not have.
    """
    if not isinstance(function, types.FunctionType):
        raise CaptureError(f"{what} must be a plain Python function defined with 'def'")
    name = function.__name__
    if name == "<lambda>":
        raise CaptureError(
            f"{what} is a lambda; define it with 'def' so its source can be captured"
        )
    if function.__code__.co_freevars:
        names = ", ".join(function.__code__.co_freevars)
        raise CaptureError(
            f"{what} reads the closure variable(s) {names}, which will not exist in the bundle; "
            "pass them through params={...}"
        )
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise CaptureError(
            f"{what}: the source of '{name}' is not available (defined interactively?)"
        ) from None
    tree = ast.parse(source)
    definition = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None
    )
    if definition is None:
        raise CaptureError(f"{what}: could not find 'def {name}' in its source")
    body = "\n".join(source.splitlines()[definition.lineno - 1 : definition.end_lineno])

    imports: dict[str, str] = {}
    params = set(function.__code__.co_varnames)
    for global_name in [*_default_names(definition), *_global_names(function.__code__)]:
        if global_name in imports or global_name in params or global_name == name:
            continue
        if global_name in function.__globals__:
            imports[global_name] = _import_line(
                global_name, function.__globals__[global_name], what
            )
        elif not hasattr(builtins, global_name):
            raise CaptureError(
                f"{what} reads the name '{global_name}', which is not defined anywhere"
            )
    header = "\n".join(sorted(set(imports.values())))
    module = f'"""Captured by Shipyard from {function.__module__}.{name}."""\n\n'
    # Annotations may name things the bundle lacks (typing.Any, pandas); never evaluate them.
    module += "from __future__ import annotations\n\n"
    module += (header + "\n\n\n" if header else "\n") + body + "\n"
    compile(module, f"<{name}>", "exec")  # a capture that does not compile is a bug here, not later
    return module, name
