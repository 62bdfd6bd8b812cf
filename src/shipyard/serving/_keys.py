"""The API keys a server accepts, held in memory and checked without the database.

Keys belong to the registry (``Registry.create_api_key`` and friends, ``shipyard
apikey``): a key reads ``sya_<id>_<secret>`` and the registry keeps only its digest. A
server following an environment fills its ``KeyRing`` from ``api_key_digests`` at every
poll, embedded or over ``SHIPYARD_URL``, and checks each presented key against every
digest of the ring in constant time (``shipyard.registry.Credential``: the registry's one
credential scheme). ``--bundle`` mode takes plain keys from a file instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..registry import ApiKeyDigest, Credential

Entry = tuple[int | None, str, str]  # (key id, None for any id; hash scheme; stored digest)


def _entry(found: ApiKeyDigest | Mapping[str, Any]) -> Entry:
    """A digest from the registry (a dataclass, or its JSON over HTTP) as a ring entry."""
    if isinstance(found, ApiKeyDigest):
        return found.id, found.scheme, found.digest
    return int(found["id"]), str(found["scheme"]), str(found["digest"])


class KeyRing:
    """The digests of the keys a server accepts; an empty ring means the routes are open.

    Build it from the registry's ``api_key_digests`` (``KeyRing(digests)``) or from plain
    keys (``KeyRing.from_keys``). Immutable: a server swaps in a new ring.
    """

    def __init__(self, digests: Iterable[ApiKeyDigest | Mapping[str, Any]] = ()) -> None:
        self._entries: tuple[Entry, ...] = tuple(dict.fromkeys(map(_entry, digests)))
        self._guarded = False

    @classmethod
    def refusing_all(cls) -> KeyRing:
        """A ring that guards the routes and accepts no key (every key was revoked)."""
        ring = cls()
        ring._guarded = True
        return ring

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> KeyRing:
        """A ring from key texts (an ``--api-key-file``: one key per line, blanks ignored).

        Such a key may be any text, so it is held as the digest of its whole text, for any id.
        """
        scheme = Credential.WHOLE_TEXT
        ring = cls()
        ring._entries = tuple(
            dict.fromkeys(
                (None, scheme, Credential.parse(k).digest(scheme)) for k in keys if k.strip()
            )
        )
        return ring

    def __bool__(self) -> bool:
        return self._guarded or bool(self._entries)

    def accepts(self, presented: str | None) -> bool:
        """Whether ``presented`` is one of the ring's keys.

        Compares with every digest of the ring, in constant time and with no early exit,
        so the time taken does not tell which key (or which part of one) was close.
        """
        if not presented:
            return False
        credential = Credential.parse(presented)
        found = False
        for key_id, scheme, stored in self._entries:
            same = credential.matches(scheme, stored)
            found |= same and (key_id is None or key_id == credential.id)
        return found
