"""What the close job relies on: a deployer's token (CI's) deletes a challenger, and only
a challenger; deleting any other environment still needs an admin."""

from __future__ import annotations

import pytest

from shipyard.errors import PermissionDenied
from shipyard.registry_http import RegistryClient


def test_a_deployer_deletes_challengers_and_nothing_else(api_server) -> None:
    api_server.registry.create_project("demo", ["integration", "uat", "production"])
    with RegistryClient(api_server.url, api_server.token("deployer", name="ci")) as ci:
        ci.create_challenger("demo", "pr-1", "integration")
        ci.delete_environment("demo", "pr-1")
        assert [e["name"] for e in ci.list_environments("demo")] == [
            "integration",
            "uat",
            "production",
        ]
        with pytest.raises(
            PermissionDenied, match="'production' \\(not a challenger\\) needs the admin role"
        ):
            ci.delete_environment("demo", "production")
    assert len(api_server.registry.list_environments("demo")) == 3
    events = api_server.registry.audit_list(2)
    assert [(e.action, e.actor) for e in events][0] == ("environment.delete", "ci")
