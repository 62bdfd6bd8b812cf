"""``shipyard apikey``: the same scenario on the embedded registry and through a registry
server (SHIPYARD_URL + SHIPYARD_TOKEN), each on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

from .test_registry_cli import Shipyard, shipyard  # noqa: F401  (the fixture, both modes)


def test_a_key_is_printed_once_listed_without_it_and_revoked(shipyard: Shipyard) -> None:  # noqa: F811
    shipyard.ok("project", "create", "demo")
    made = shipyard.json("apikey", "create", "--project", "demo", "--env", "production")
    assert made["key"].startswith(f"sya_{made['id']}_")
    assert (made["name"], made["environment"], made["created_by"]) == (
        "default",
        "production",
        shipyard.actor,
    )
    shown = shipyard.ok("apikey", "create", "-p", "demo", "-e", "production", "--name", "web")
    assert "it is shown only now" in shown and "X-API-Key" in shown
    listed = shipyard.json("apikey", "list", "--project", "demo", "--env", "production")
    assert [(k["name"], k["revoked"]) for k in listed] == [("default", False), ("web", False)]
    assert made["key"] not in json.dumps(listed) and made["key"] not in shown
    revoked = shipyard.json("apikey", "revoke", str(made["id"]), "-p", "demo", "-e", "production")
    assert revoked["revoked"] is True
    assert "revoked API key" in shipyard.ok(
        "apikey", "revoke", str(made["id"]), "-p", "demo", "-e", "production"
    )
    table = shipyard.ok("apikey", "list", "-p", "demo", "-e", "production")
    assert "default" in table and "web" in table
    error = shipyard.fails(1, "apikey", "revoke", "999", "-p", "demo", "-e", "production")
    assert "environment 'production' has no API key 999" in error
    error = shipyard.fails(1, "apikey", "create", "-p", "demo", "-e", "staging")
    assert "has no environment 'staging'" in error
    audit = shipyard.json("audit", "list", "--object", "project/demo/environment/production")
    assert [e["action"] for e in audit][:2] == ["apikey.revoke", "apikey.create"]
    assert [e["actor"] for e in audit][0] == shipyard.actor
