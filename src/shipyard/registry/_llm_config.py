"""The language model endpoint an environment's llm nodes call, from its environment config.

A bundle locks an llm node's settings but never its endpoint nor its key. A serving or
batch host learns them from its own variables (``SHIPYARD_LLM_BASE_URL`` and
``SHIPYARD_LLM_API_KEY`` or ``SHIPYARD_LLM_API_KEY_FILE``), or from the ``llm`` entry of the
environment config it runs::

    {"llm": {"base_url": "https://llm.internal/v1",
             "api_key_env": "SHIPYARD_LLM_KEY_UAT",     # or
             "api_key_file": "uat/llm.key",             # under $SHIPYARD_SECRETS_ROOT
             "concurrency": 8}}

The config names where the key is, never the key: ``env config get`` prints the config,
and the registry refuses an ``api_key`` (or anything it does not know) in it. A key
variable's name must begin ``SHIPYARD_LLM_`` and a key file lie under the host's secrets
root, so a config cannot send the host's other secrets (its registry token, a cloud
credential) to an endpoint of its choosing.

Which wins: a host whose ``SHIPYARD_LLM_BASE_URL`` is set calls that endpoint with its own
key, whatever the config says (the operator pins it); the config's ``llm`` entry applies
only on a host that names no endpoint. ``SHIPYARD_LLM_CONCURRENCY`` likewise wins over
``llm.concurrency``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, PermissionDenied, UsageError
from ._db import shipyard_home
from ._roots import Roots

if TYPE_CHECKING:
    from ..runtime import Endpoint

logger = logging.getLogger("shipyard.registry")

SECRETS_ROOT_ENV = "SHIPYARD_SECRETS_ROOT"
BASE_URL_ENV = "SHIPYARD_LLM_BASE_URL"
CONCURRENCY_ENV = "SHIPYARD_LLM_CONCURRENCY"
KEY_VARIABLE = re.compile(r"^SHIPYARD_LLM_[A-Z0-9_]+$")
KEYS = ("base_url", "api_key_env", "api_key_file", "concurrency")
# What someone storing the key itself would call it: refused with the way to do it instead.
_RAW_KEYS = frozenset({"api_key", "key", "token", "secret", "password", "authorization"})
_INSTEAD = (
    "name an environment variable of the serving host (llm.api_key_env) or a file under its "
    f"secrets root (llm.api_key_file, relative to ${SECRETS_ROOT_ENV})"
)


def secrets_root() -> Roots:
    """This host's secrets root: ``$SHIPYARD_SECRETS_ROOT``, else ``$SHIPYARD_HOME/secrets``."""
    chosen = os.environ.get(SECRETS_ROOT_ENV) or shipyard_home() / "secrets"
    where = f"{SECRETS_ROOT_ENV} on the serving or batch host"
    return Roots((os.path.abspath(chosen),), "secrets root", where)


def check_llm_config(config: Mapping[str, Any]) -> None:
    """Refuse an environment config whose ``llm`` entry is malformed or holds a secret.

    Messages name the key and the rule, never the value given (it may be a pasted key).
    Raises InvalidInput; PermissionDenied for a key file leading out of the secrets root.
    """
    dotted = sorted(k for k in config if isinstance(k, str) and k.startswith("llm."))
    if dotted:
        raise InvalidInput(
            f"environment config: '{dotted[0]}' is a dotted key; give llm as a mapping "
            '({"llm": {"base_url": ...}})'
        )
    entry = config.get("llm")
    if entry is None:
        return
    if not isinstance(entry, dict):
        raise InvalidInput("environment config: llm must be a mapping (base_url, api_key_env, …)")
    for name in entry:
        if str(name).lower() in _RAW_KEYS:
            raise InvalidInput(
                f"environment config: llm.{name} would store a key where `env config get` "
                f"prints it; {_INSTEAD} (the value given is not shown)"
            )
        if name not in KEYS:
            raise InvalidInput(
                f"environment config: llm.{name} is not a setting (settings: {', '.join(KEYS)})"
            )
    base = entry.get("base_url")
    if base is None:
        raise InvalidInput("environment config: llm needs a base_url (the API's base, …/v1)")
    _check_base_url(base)
    if "api_key_env" in entry and "api_key_file" in entry:
        raise InvalidInput("environment config: give llm.api_key_env or llm.api_key_file, not both")
    if "api_key_env" in entry:
        variable = entry["api_key_env"]
        if not isinstance(variable, str) or not KEY_VARIABLE.match(variable):
            raise InvalidInput(
                "environment config: llm.api_key_env must name an environment variable "
                "beginning SHIPYARD_LLM_ (capitals, digits, _); the value given is not shown"
            )
    if "api_key_file" in entry:
        _check_key_file(entry["api_key_file"])
    if "concurrency" in entry:
        value = entry["concurrency"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput("environment config: llm.concurrency must be a whole number >= 1")


def _check_base_url(base: Any) -> None:
    problem = "llm.base_url must be an http(s) URL without credentials, query or fragment"
    if not isinstance(base, str):
        raise InvalidInput(f"environment config: {problem}")
    try:
        parts = urllib.parse.urlsplit(base)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        raise InvalidInput(f"environment config: {problem}") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
    ):
        raise InvalidInput(f"environment config: {problem}; the value given is not shown")


def _check_key_file(path: Any) -> None:
    """A key file relative to the secrets root that stays inside it (the registry cannot
    see the hosts' disks; each host resolves it again before use)."""
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise InvalidInput("environment config: llm.api_key_file must be a file name")
    normal = posixpath.normpath(path.replace("\\", "/"))
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise PermissionDenied(
            f"environment config: llm.api_key_file '{path}' is outside the secrets root; "
            f"give a file relative to it (the host's {SECRETS_ROOT_ENV}, default "
            "$SHIPYARD_HOME/secrets)"
        )


def llm_endpoint(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Endpoint | None:
    """The endpoint llm nodes call on this host for an environment whose config is ``config``.

    None when the host names one (``SHIPYARD_LLM_BASE_URL``: it wins, and the runtime reads
    it) or the config has no ``llm`` entry. Otherwise the config's endpoint, its key read
    from the variable it names, or its key file located under the secrets root (read at
    each call). Raises InvalidInput for a malformed entry, PermissionDenied for a key file
    outside the secrets root, UsageError when the named variable is not set here.
    """
    from ..runtime import Endpoint  # needs numpy: imported when an endpoint is built

    environ = os.environ if environ is None else environ
    entry = config.get("llm")
    if entry is None:
        return None
    if (environ.get(BASE_URL_ENV) or "").strip():
        logger.warning(
            "the environment config's llm endpoint is not used: %s is set on this host and wins",
            BASE_URL_ENV,
        )
        return None
    check_llm_config(config)
    concurrency = int(entry.get("concurrency", 4))
    if (environ.get(CONCURRENCY_ENV) or "").strip():
        concurrency = Endpoint.from_environ({CONCURRENCY_ENV: environ[CONCURRENCY_ENV]}).concurrency
    key = key_file = None
    if "api_key_env" in entry:
        key = environ.get(entry["api_key_env"]) or None
        if key is None:
            raise UsageError(
                f"the environment config's llm.api_key_env names {entry['api_key_env']}, "
                "which is not set on this host"
            )
    elif "api_key_file" in entry:
        key_file = secrets_root().locate(entry["api_key_file"], "llm.api_key_file")
    return Endpoint(entry["base_url"], key, concurrency, key_file)
