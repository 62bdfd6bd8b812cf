"""Where batch jobs and request capture may read and write: under roots a host's operator sets.

A deployer names files: a batch job's input and output, an environment's capture folder.
The host that reads or writes them decides where that may be, from its own environment,
never from data a deployer can change:

    SHIPYARD_BATCH_ROOTS    the registry (at submission) and each batch worker
                            default $SHIPYARD_HOME/batch
    SHIPYARD_CAPTURE_ROOT   shipyard serve; default $SHIPYARD_HOME/capture

``SHIPYARD_BATCH_ROOTS`` is a comma-separated list of absolute folders and ``s3://bucket/prefix``
entries; a relative location goes under the first. A location is checked where it is
named (the registry refuses the job or the config at once) and again on the host that
uses it, just before, with symlinks and ``..`` resolved: a link inside a root cannot
lead out of it. Refusals are PermissionDenied naming the location and the roots.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, PermissionDenied, UsageError
from ._db import shipyard_home

BATCH_ROOTS_ENV = "SHIPYARD_BATCH_ROOTS"
CAPTURE_ROOT_ENV = "SHIPYARD_CAPTURE_ROOT"
_S3 = "s3://"


@dataclass(frozen=True)
class Roots:
    """Folders and ``s3://`` prefixes that locations stay under; relative ones go under the first.

    ``name`` says what they are in messages (``batch roots``); ``setting`` how an
    operator changes them. Folders are absolute; prefixes end with ``/``.
    """

    entries: tuple[str, ...]
    name: str
    setting: str

    @classmethod
    def parse(cls, text: str, name: str, setting: str) -> Roots:
        """Roots from a comma-separated list; UsageError for a relative folder or no entry."""
        entries: list[str] = []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            if entry.startswith(_S3):
                if not entry[len(_S3) :].strip("/"):
                    raise UsageError(f"{setting}: '{entry}' names no bucket")
                entries.append(entry.rstrip("/") + "/")
            elif "://" in entry or not os.path.isabs(entry):
                raise UsageError(f"{setting}: '{entry}' is not an absolute folder or s3:// prefix")
            else:
                entries.append(os.path.normpath(entry))
        if not entries:
            raise UsageError(f"{setting} names no folder")
        return cls(tuple(entries), name, setting)

    def __str__(self) -> str:
        return ", ".join(self.entries)

    def locate(self, location: str, what: str) -> str:
        """Where ``location`` is: a real path (symlinks and ``..`` resolved) or an s3:// URI.

        A relative location goes under the first root. Raises PermissionDenied naming the
        location and the roots when it is outside every root, InvalidInput when it is
        not a path or s3:// URI (``what`` names it: ``the output location``).
        """
        if not isinstance(location, str) or not location or "\x00" in location:
            raise InvalidInput(f"{what} must be a path or an s3:// URI")
        if "://" in location and not location.startswith(_S3):
            raise InvalidInput(f"{what} '{location}' must be a path or an s3:// URI")
        first = self.entries[0]
        joined = location
        if not location.startswith(_S3) and not os.path.isabs(location):
            joined = first + location if first.startswith(_S3) else os.path.join(first, location)
        if joined.startswith(_S3):
            key = joined[len(_S3) :]
            if any(part in (".", "..") for part in key.split("/")):
                raise InvalidInput(f"{what} '{location}' may not have '.' or '..' in its key")
            if any(joined.startswith(e) for e in self.entries if e.startswith(_S3)):
                return joined
            raise self._outside(what, location, joined)
        real = os.path.realpath(joined)
        for entry in self.entries:
            if entry.startswith(_S3):
                continue
            root = os.path.realpath(entry)
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return real
        raise self._outside(what, location, real)

    def _outside(self, what: str, location: str, resolved: str) -> PermissionDenied:
        shown = f"'{location}'" + (f" ({resolved})" if resolved != location else "")
        return PermissionDenied(
            f"{what} {shown} is outside the {self.name} ({self}), which an operator sets "
            f"with {self.setting}"
        )


def batch_roots() -> Roots:
    """The batch roots of this host: ``$SHIPYARD_BATCH_ROOTS``, else ``$SHIPYARD_HOME/batch``.

    Raises UsageError when the variable is malformed.
    """
    where = f"{BATCH_ROOTS_ENV} on the registry and the workers"
    text = os.environ.get(BATCH_ROOTS_ENV)
    if text:
        return Roots.parse(text, "batch roots", where)
    return Roots((os.path.abspath(shipyard_home() / "batch"),), "batch roots", where)


def capture_root(folder: str | os.PathLike[str] | None = None) -> Roots:
    """The capture root of this serving host: ``folder`` if given, else
    ``$SHIPYARD_CAPTURE_ROOT``, else ``$SHIPYARD_HOME/capture``."""
    chosen = folder or os.environ.get(CAPTURE_ROOT_ENV) or shipyard_home() / "capture"
    where = f"{CAPTURE_ROOT_ENV} on the serving host"
    return Roots((os.path.abspath(chosen),), "capture root", where)


def check_capture_folder(folder: Any) -> str:
    """An environment config's ``capture.folder``: a folder relative to the serving host's root.

    The registry cannot see the serving hosts' disks, so it allows only what stays inside
    any root: no absolute path, no ``..`` leading out. Raises PermissionDenied otherwise,
    InvalidInput when it is not text.
    """
    if not isinstance(folder, str) or not folder.strip() or "\x00" in folder:
        raise InvalidInput("environment config: capture.folder must be a folder name")
    normal = posixpath.normpath(folder.replace("\\", "/"))
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise PermissionDenied(
            f"environment config: capture.folder '{folder}' is outside the capture root; "
            "give a folder relative to it (the serving host's "
            f"{CAPTURE_ROOT_ENV}, default $SHIPYARD_HOME/capture)"
        )
    return folder


def check_environment_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config``, with its ``capture`` entry checked (see ``check_capture_folder``;
    ``llm_calls`` and ``llm_prompts`` are true or false)."""
    capture = config.get("capture")
    if capture is None:
        return config
    if not isinstance(capture, dict):
        raise InvalidInput("environment config: capture must be a mapping of rate and folder")
    if capture.get("folder") is not None:
        check_capture_folder(capture["folder"])
    for key in ("llm_calls", "llm_prompts"):
        if key in capture and not isinstance(capture[key], bool):
            raise InvalidInput(f"environment config: capture.{key} must be true or false")
    return config
