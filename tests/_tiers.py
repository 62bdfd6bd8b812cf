"""Sort every collected test into one tier, ``unit`` or ``integration``, by what it uses.

A test is ``integration`` when it, a helper it calls, or a fixture it needs (followed
through every function and class defined under ``tests/``) touches a real socket, a
subprocess, a PostgreSQL server, a uvicorn server, a moto S3 server or Spark; when it is
parametrized onto PostgreSQL, S3 or HTTP (fixtures such as ``database_url`` and ``store``
that pick their backend at run time); or when it is marked ``slow``. Everything else is ``unit``.
What the walk cannot see (a ``shipyard`` function that starts a process by itself) is
marked by hand with ``pytest.mark.integration`` next to the test; a hand-set tier wins.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Iterable
from typing import Any

import pytest

TIERS = ("unit", "integration")

# A name resolving to anything from these modules means real I/O outside the process:
# sockets and servers, processes, a database server, a JVM.
OUTSIDE = (
    "socket",
    "subprocess",
    "multiprocessing",
    "uvicorn",
    "psycopg",
    "pyspark",
    "moto.server",
    "moto.moto_server",  # where moto.server's ThreadedMotoServer is defined
)

# Values of a parametrized fixture that put a test on a server instead of a file or memory
# (such fixtures ask for the server with request.getfixturevalue, which the walk cannot see).
SERVER_PARAMS = {"postgresql", "s3", "http"}

_verdicts: dict[Any, bool] = {}


def _from_outside(module: str | None) -> bool:
    return module is not None and any(
        module == name or module.startswith(name + ".") for name in OUTSIDE
    )


def _ours(obj: Any) -> bool:
    """Whether ``obj`` is a module, function or class of the test suite (worth walking)."""
    if isinstance(obj, types.ModuleType):
        module = obj.__name__
    else:
        module = getattr(obj, "__module__", None) or ""
    return module == "tests" or module.startswith("tests.") or module == "conftest"


def _code_reaches_outside(code: types.CodeType, namespace: dict[str, Any]) -> bool:
    module: types.ModuleType | None = None  # a module of the suite just loaded: helpers.start()
    for instruction in dis.get_instructions(code):
        name = instruction.argval
        if instruction.opname == "IMPORT_NAME" and _from_outside(name):
            return True
        found: Any = None
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(name, str):
            found = namespace.get(name)
        elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and module is not None:
            found = getattr(module, str(name), None)
        if found is not None and reaches_outside(found):
            return True
        module = found if isinstance(found, types.ModuleType) and _ours(found) else None
    return any(
        _code_reaches_outside(const, namespace)
        for const in code.co_consts
        if isinstance(const, types.CodeType)
    )


def reaches_outside(obj: Any) -> bool:
    """Whether calling or using ``obj`` can reach real I/O outside the test process."""
    obj = getattr(obj, "__wrapped__", obj)
    if isinstance(obj, types.ModuleType):
        return _from_outside(obj.__name__)
    if _from_outside(getattr(obj, "__module__", None)):
        return True
    if not isinstance(obj, types.FunctionType | type) or not _ours(obj):
        return False
    if obj in _verdicts:
        return _verdicts[obj]
    _verdicts[obj] = False  # a cycle (a helper calling itself) adds nothing
    if isinstance(obj, types.FunctionType):
        verdict = _code_reaches_outside(obj.__code__, obj.__globals__)
    else:
        verdict = any(reaches_outside(member) for member in _functions_of(obj))
    _verdicts[obj] = verdict
    return verdict


def _functions_of(cls: type) -> Iterable[Any]:
    for member in vars(cls).values():
        if isinstance(member, staticmethod | classmethod):
            yield member.__func__
        elif isinstance(member, property):
            yield from (f for f in (member.fget, member.fset) if f is not None)
        elif isinstance(member, types.FunctionType):
            yield member


def _needs_outside(item: pytest.Item) -> bool:
    if item.get_closest_marker("slow") is not None:
        return True
    if reaches_outside(getattr(item, "function", None)):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    callspec = getattr(item, "callspec", None)
    for name, value in (callspec.params if callspec is not None else {}).items():
        definitions = info.name2fixturedefs.get(name)
        on_a_fixture = bool(definitions) and definitions[-1].params is not None
        if on_a_fixture and isinstance(value, str) and value in SERVER_PARAMS:
            return True
    return any(
        reaches_outside(definitions[-1].func)
        for name in info.names_closure
        if (definitions := info.name2fixturedefs.get(name))
    )


def assign_tiers(items: list[pytest.Item]) -> None:
    """Give every item exactly one tier marker; a tier set by hand is kept.

    Raises ``pytest.UsageError`` when a test is marked with both tiers by hand.
    """
    for item in items:
        chosen = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
        if len(chosen) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked both unit and integration")
        if not chosen:
            tier = "integration" if _needs_outside(item) else "unit"
            item.add_marker(tier)
