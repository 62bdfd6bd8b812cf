"""One reading of the credential a request presents, for the registry API and serving."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.web import presented_credential


def _scope(*headers: tuple[str, str]) -> dict[str, Any]:
    return {"headers": [(k.encode(), v.encode("latin-1")) for k, v in headers]}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("authorization", "Bearer shy_1_abc")], "shy_1_abc"),
        ([("authorization", "bearer   shy_1_abc  ")], "shy_1_abc"),
        ([("authorization", "BEARER shy_1_abc")], "shy_1_abc"),
        ([("authorization", "Basic dXNlcjpwdw==")], None),
        ([("authorization", "Bearer ")], None),
        ([("authorization", "shy_1_abc")], None),
        ([], None),
        # The first Authorization header counts, as with every other header.
        ([("authorization", "Bearer first"), ("authorization", "Bearer second")], "first"),
    ],
)
def test_a_bearer_token(headers: list[tuple[str, str]], expected: str | None) -> None:
    assert presented_credential(_scope(*headers)) == expected
    assert presented_credential(_scope(*headers), api_key_header=True) == expected


def test_x_api_key_counts_only_where_a_server_accepts_it_and_wins_there() -> None:
    both = _scope(("x-api-key", " sya_2_key "), ("authorization", "Bearer sya_3_other"))
    assert presented_credential(both, api_key_header=True) == "sya_2_key"
    assert presented_credential(both) == "sya_3_other"
    only_key = _scope(("x-api-key", "sya_2_key"))
    assert presented_credential(only_key) is None
    assert presented_credential(_scope(("x-api-key", "  ")), api_key_header=True) is None
