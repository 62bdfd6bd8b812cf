"""Writing a render: canonical YAML, one document a file, and the digest of the whole tree.

Files are written only from their text (sorted keys, no timestamps, no flow style), so
the same plan writes the same bytes. Every YAML file starts with ``HEADER``: a file that
carries it is Shipyard's to replace, and one a render no longer writes is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

HEADER = "# Rendered by `shipyard deploy render`: change the registry and render again.\n"


class _Dumper(yaml.SafeDumper):
    """Safe YAML whose multi-line strings (a config file in a ConfigMap) read as blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def yaml_text(document: Any) -> str:
    """``document`` as YAML under ``HEADER``: block style, keys sorted, nothing wrapped."""
    body = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 20,
    )
    return HEADER + body


def json_text(document: Any) -> str:
    """``document`` as indented JSON with sorted keys and a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def tree_digest(files: Mapping[str, str]) -> str:
    """``sha256:…`` of every file's path and contents: equal renders, equal digests."""
    whole = hashlib.sha256()
    for path in sorted(files):
        whole.update(path.encode() + b"\0" + hashlib.sha256(files[path].encode()).digest())
    return "sha256:" + whole.hexdigest()


def write_tree(folder: Path, files: Mapping[str, str], owned: Iterable[str]) -> list[str]:
    """Write ``files`` (relative path -> text) under ``folder``; returns the paths written.

    In each ``owned`` sub-folder, a file that starts with ``HEADER`` and is not in
    ``files`` is left over from an earlier render and removed; nothing else is touched.
    A file is replaced through a temporary name, so a reader never sees half of one.
    """
    for sub in owned:
        where = folder / sub
        if not where.is_dir():
            continue
        for found in sorted(where.iterdir()):
            relative = found.relative_to(folder).as_posix()
            if relative in files or not found.is_file() or found.is_symlink():
                continue
            with found.open("rb") as stream:
                ours = stream.read(len(HEADER.encode())) == HEADER.encode()
            if ours:
                found.unlink()
    for relative, text in sorted(files.items()):
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text, encoding="utf-8", newline="\n")
        os.replace(partial, target)
    return sorted(files)
