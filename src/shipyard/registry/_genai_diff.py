"""What a version change does to a model's GenAI parts, as unified diffs of their text.

A prompt template, an llm node's settings (``llm.json``), a knowledge document or an
answer schema changes the model's behaviour as surely as new weights, and a reviewer
must see how. Both versions' bundles are read from the artifact store (their sha256
checked on the way), and only ``metadata.json`` and the GenAI nodes' text files are kept:
nothing is loaded, imported or run.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..runtime import read_bundle
from ._store import ArtifactStore
from ._types import FileDiff

MAX_DIFF_LINES = 400  # per file: a whole rewritten document is summarised, not printed
RETRIEVE_SETTINGS = ("knowledge", "top_k", "separator")
NO_NEWLINE = "\\ No newline at end of file"  # as diff(1) marks a last line without one

GenAIText = tuple[str, str, str]  # (node, kind, text)


def _wanted(path: str) -> bool:
    """The files that may be a GenAI node's text: metadata.json says which ones are."""
    if path == "metadata.json":
        return True
    return path.startswith("objects/") and (
        path.endswith((".jinja", "/prompt.json", "/llm.json", "/schema.json")) or "/files/" in path
    )


def genai_texts(files: Mapping[str, bytes]) -> dict[str, GenAIText]:
    """Every GenAI node's text in a bundle's files: ``{path: (node, kind, text)}``.

    prompt: ``prompt.json`` and its templates; llm: ``llm.json``; parse: ``schema.json``;
    knowledge: its documents; retrieve: its settings from metadata.json, as
    ``metadata.json#NODE``. A bundle without GenAI nodes gives ``{}``.
    """
    metadata = json.loads(files["metadata.json"])
    found: dict[str, GenAIText] = {}
    for node in metadata.get("nodes", []):
        kind, name = node.get("kind"), node.get("name")
        if kind == "retrieve":
            settings = {key: node.get(key) for key in RETRIEVE_SETTINGS}
            text = json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
            found[f"metadata.json#{name}"] = (name, kind, text)
            continue
        if kind == "prompt":
            paths = [node["file"], *node.get("templates", [])]
        elif kind in ("llm", "parse"):
            paths = [node["file"]]
        elif kind == "knowledge":
            paths = list(node.get("documents", []))
        else:
            continue
        for path in paths:
            data = files.get(path)
            if data is not None:
                found[path] = (name, kind, data.decode("utf-8", "replace"))
    return found


def stored_genai_texts(store: ArtifactStore, digest: str) -> dict[str, GenAIText]:
    """``genai_texts`` of a stored bundle (fetched, sha256-checked, read in part)."""
    with tempfile.TemporaryDirectory(prefix="shipyard-diff-") as folder:
        path = store.fetch(digest, Path(folder) / "bundle.tar.gz")
        return genai_texts(read_bundle(path, _wanted)[1])


def file_diffs(
    old: Mapping[str, GenAIText], new: Mapping[str, GenAIText], old_label: str, new_label: str
) -> list[FileDiff]:
    """The GenAI files whose text differs from ``old`` to ``new``, in path order.

    Labels name each side in the diff headers (``production v1``).
    """
    diffs = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before is not None and after is not None and before[2] == after[2]:
            continue
        side = after if after is not None else before
        assert side is not None  # the path came from one of them
        node, kind, _ = side
        change = "added" if before is None else "removed" if after is None else "changed"
        diffs.append(_file_diff(path, node, kind, change, before, after, old_label, new_label))
    return diffs


def _file_diff(
    path: str,
    node: str,
    kind: str,
    change: str,
    before: GenAIText | None,
    after: GenAIText | None,
    old_label: str,
    new_label: str,
) -> FileDiff:
    lines = list(
        difflib.unified_diff(
            _lines(before),
            _lines(after),
            f"{old_label}/{path}" if before else "/dev/null",
            f"{new_label}/{path}" if after else "/dev/null",
        )
    )
    body = lines[2:]
    added = sum(1 for line in body if line.startswith("+"))
    removed = sum(1 for line in body if line.startswith("-"))
    truncated = len(lines) > MAX_DIFF_LINES
    if truncated:
        left = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"… {left} more lines of diff left out\n"]
    text = "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}\n" for line in lines)
    return FileDiff(path, node, kind, change, added, removed, text, truncated)


def _lines(side: GenAIText | None) -> list[str]:
    return side[2].splitlines(keepends=True) if side is not None else []


def genai_changes(
    store: ArtifactStore, old_digest: str, new_digest: str, old_label: str, new_label: str
) -> list[FileDiff]:
    """The GenAI file diffs from the stored bundle ``old_digest`` to ``new_digest``.

    Raises StoreError when a bundle is missing or corrupt in the store, the runtime's
    ArtifactError when one is not a readable bundle.
    """
    if old_digest == new_digest:
        return []
    old = stored_genai_texts(store, old_digest)
    new = stored_genai_texts(store, new_digest)
    return file_diffs(old, new, old_label, new_label) if old or new else []
