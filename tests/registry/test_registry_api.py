"""``RegistryAPI``: the Protocol that the embedded registry and the HTTP client both implement."""

from __future__ import annotations

import inspect

from shipyard.registry import Registry, RegistryAPI
from shipyard.registry_http import OPERATIONS, RegistryClient

PROTOCOL_METHODS = {
    name
    for name, value in vars(RegistryAPI).items()
    if callable(value) and not name.startswith("_")
}


def test_every_operation_is_in_the_protocol_and_nothing_else() -> None:
    assert {op.name for op in OPERATIONS} == PROTOCOL_METHODS


def test_the_embedded_registry_has_each_method_with_the_same_parameters() -> None:
    for name in sorted(PROTOCOL_METHODS):
        promised = inspect.signature(getattr(RegistryAPI, name))
        actual = inspect.signature(getattr(Registry, name))
        assert [(p.name, p.kind, p.default) for p in promised.parameters.values()] == [
            (p.name, p.kind, p.default) for p in actual.parameters.values()
        ], name
        assert [str(p.annotation) for p in promised.parameters.values()] == [
            str(p.annotation) for p in actual.parameters.values()
        ], name


def test_the_client_answers_each_method_through_the_operation_table() -> None:
    client = RegistryClient("http://127.0.0.1:9", token=None)  # never called: nothing listens
    try:
        offered = set(dir(client))
        for name in sorted(PROTOCOL_METHODS):
            assert name in offered, name
            assert callable(getattr(client, name)), name
    finally:
        client.close()
