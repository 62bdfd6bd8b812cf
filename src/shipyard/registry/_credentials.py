"""The one credential scheme of the registry: ``<prefix>_<id>_<secret>``, stored as a digest.

Registry API tokens (``shy_…``) and serving API keys (``sya_…``) are both made here: a
random secret, the row's id in front of it so that a check can find the one stored
digest to compare with, and only ``sha256(secret)`` kept (scheme ``SECRET``). Comparisons
use ``hmac.compare_digest``, and a credential whose id is unknown is still compared (with
a digest that matches nothing), so timing tells nothing about which part was wrong.

Serving keys made before migration 0004 were stored as ``sha256`` of the whole text
(scheme ``WHOLE_TEXT``); such a digest cannot be turned into ``sha256(secret)``, so
those rows keep their scheme and verify by the old rule until they are revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import ClassVar

from ..errors import InvalidInput
from ._db import storable_id

SECRET = "sha256-secret"  # sha256 of the secret part: every credential made now
WHOLE_TEXT = "sha256-text"  # sha256 of the whole text: serving keys made before 0004
SCHEMES = (SECRET, WHOLE_TEXT)
NO_DIGEST = "0" * 64  # what an unknown id is compared with: no sha256 is all zeros


def _row_id(number: str) -> bool:
    """Whether ``number`` is the decimal id of a row there can be (1 to ``MAX_ID``)."""
    return number.isascii() and number.isdigit() and len(number) <= 10 and storable_id(int(number))


def sha256_hex(value: str) -> str:
    """The hex sha256 of ``value`` (UTF-8), as stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_secret() -> tuple[str, str]:
    """A fresh random secret (256 bits, URL-safe) and the digest to store for it."""
    secret = secrets.token_urlsafe(32)
    return secret, sha256_hex(secret)


@dataclass(frozen=True)
class Credential:
    """A presented credential, parsed once: ``prefix``, ``id`` and ``secret`` when it reads
    ``<prefix>_<id>_<secret>``, else None (an ``--api-key-file`` key can be any text).

    Never printed: its repr shows neither the text nor the secret.
    """

    SECRET: ClassVar[str] = SECRET
    WHOLE_TEXT: ClassVar[str] = WHOLE_TEXT

    text: str = field(repr=False)
    prefix: str | None
    id: int | None
    secret: str | None = field(repr=False)

    @classmethod
    def parse(cls, text: str | None) -> Credential:
        """Split ``text`` into its parts (surrounding blanks are not part of it)."""
        text = (text or "").strip()
        prefix, _, rest = text.partition("_")
        number, _, secret = rest.partition("_")
        # An id past a database integer names no row (and PostgreSQL refuses it in a query).
        if prefix.isalpha() and _row_id(number) and secret:
            return cls(text, prefix, int(number), secret)
        return cls(text, None, None, None)

    @staticmethod
    def make(prefix: str, id: int, secret: str) -> str:
        """The text a caller presents: ``<prefix>_<id>_<secret>``."""
        return f"{prefix}_{id}_{secret}"

    @cached_property
    def _digests(self) -> dict[str, str]:
        # Computed once per presented credential, however many stored digests it meets.
        return {
            SECRET: sha256_hex(self.secret) if self.secret else NO_DIGEST,
            WHOLE_TEXT: sha256_hex(self.text) if self.text else NO_DIGEST,
        }

    def digest(self, scheme: str) -> str:
        """What would be stored for this credential under ``scheme``; ValueError if unknown."""
        found = self._digests.get(scheme)
        if found is None:
            raise ValueError(f"unknown credential scheme {scheme!r} (schemes: {SCHEMES})")
        return found

    def matches(self, scheme: str, stored: str | None) -> bool:
        """Whether ``stored`` (a digest by ``scheme``, None for an unknown id) is this credential's.

        Always makes one constant-time comparison, whatever is wrong. The caller checks
        that the stored row's id is this credential's ``id``. ValueError for an unknown scheme.
        """
        candidate = self.digest(scheme)
        same = hmac.compare_digest(candidate, stored or NO_DIGEST)
        return same and candidate != NO_DIGEST and stored is not None


MAX_DAYS = 3650  # ten years: past that, a credential is forever by another name


def expires_at(expires_in_days: int | None) -> datetime | None:
    """When a credential made now with ``expires_in_days`` stops working (None: never).

    Raises InvalidInput unless it is a whole number from 1 to MAX_DAYS.
    """
    if expires_in_days is None:
        return None
    if isinstance(expires_in_days, bool) or not 1 <= expires_in_days <= MAX_DAYS:
        raise InvalidInput(f"expires_in_days must be a whole number from 1 to {MAX_DAYS}")
    return datetime.now(UTC) + timedelta(days=expires_in_days)


def aware(moment: datetime) -> datetime:
    """``moment`` with its time zone (SQLite gives back naive UTC times)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
