"""Rewrite a skops file so that its bytes depend on the model alone.

``skops.io.dumps`` (0.16) is not reproducible, for four reasons:

* every zip member is stamped with the time of the save;
* each node's ``"__id__"`` in ``schema.json`` is ``id()`` of the object, a memory address,
  and the members holding arrays and sparse matrices are named after it (``<id>.npy``,
  ``<id>.npz``): it changes between processes and between two copies of one model;
* a bytes object's member is named by a random ``uuid4`` (``<uuid>.bin``);
* a set's elements are listed in iteration order, which for strings follows the
  interpreter's hash seed.

The ids only link nodes. skops memoises every node it loads under its ``"__id__"``, and a
later node with the same id loads as that same object: that is how a transformer used
twice in a Pipeline, or an array two attributes share, comes back shared. Any one-to-one
renumbering keeps those links, so ids are renumbered 1, 2, … in order of first appearance
(not from 0: skops does not memoise a node whose id is 0), and members are renamed in the
order they are first referenced. Before that, each set's elements are sorted by their
content: the order a set is rebuilt in changes nothing. The zip is then written again with
a fixed date, permissions and host system, and uncompressed, as skops writes it by default,
which also keeps the bytes independent of the zlib version.

The result is a skops file like any other: ``skops.io.loads`` reads it, with the same
trusted types, as it reads the file skops wrote.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

SCHEMA = "schema.json"

# The earliest date a zip entry can carry (1980-01-01), as other reproducible builds use.
_DATE = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # the "made by" host; zipfile writes 0 on Windows, which would change the bytes


def canonical(data: bytes) -> bytes:
    """The skops file ``data`` with canonical ids, member names, set order and zip headers.

    Raises ValueError, KeyError or zipfile.BadZipFile when ``data`` is not a skops file.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    schema = json.loads(members.pop(SCHEMA))
    _sort_sets(schema, members)
    names = _renumber(schema, members)
    # A member no node names is never read (skops' loaders read a member only through a
    # node's "file"), so it is left out rather than kept under a name of its own, which
    # could be random or collide with a new one. Were a later skops to read one some other
    # way, loading the file back (as every save does) fails with a KeyError naming it.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as target:
        for old, new in names.items():
            _write(target, new, members[old])
        _write(target, SCHEMA, json.dumps(schema, indent=2).encode())  # as skops writes it
    return buffer.getvalue()


def _write(target: zipfile.ZipFile, name: str, content: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = _UNIX
    info.external_attr = 0o644 << 16
    target.writestr(info, content)


def _is_node(value: Any) -> bool:
    """Whether ``value`` is a node's state (a dict node's own keys sit below, in content)."""
    return isinstance(value, dict) and isinstance(value.get("__loader__"), str)


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return []


def _renumber(schema: Any, members: dict[str, bytes]) -> dict[str, str]:
    """Renumber every node's ``"__id__"`` and rename the members they refer to, in place.

    Returns ``{old member name: new name}``, in the order the members are first referenced.
    """
    ids: dict[int, int] = {}
    names: dict[str, str] = {}
    stack = [schema]
    while stack:  # depth first in document order, the order in which skops wrote the file
        value = stack.pop()
        if _is_node(value):
            old = value.get("__id__")
            if isinstance(old, int) and not isinstance(old, bool):
                value["__id__"] = ids.setdefault(old, len(ids) + 1)
            file = value.get("file")
            if isinstance(file, str) and file in members:
                suffix = file[file.rfind(".") :] if "." in file else ""
                value["file"] = names.setdefault(file, f"{len(names) + 1}{suffix}")
        stack.extend(reversed(_children(value)))
    return names


def _sort_sets(value: Any, members: dict[str, bytes]) -> None:
    """Sort each set node's elements (innermost sets first) by their content, ids left out."""
    for child in _children(value):
        _sort_sets(child, members)
    if _is_node(value) and value["__loader__"] == "SetNode":
        content = value.get("content")
        if isinstance(content, list):
            content.sort(key=lambda element: json.dumps(_without_ids(element, members)))


def _without_ids(value: Any, members: dict[str, bytes]) -> Any:
    """``value`` without its nodes' ids, each member name replaced by its content's digest."""
    if isinstance(value, list):
        return [_without_ids(v, members) for v in value]
    if not isinstance(value, dict):
        return value
    node = _is_node(value)
    result = {}
    for key, child in sorted(value.items()):
        if node and key == "__id__":
            continue
        if node and key == "file" and isinstance(child, str) and child in members:
            child = hashlib.sha256(members[child]).hexdigest()
        result[key] = _without_ids(child, members)
    return result
