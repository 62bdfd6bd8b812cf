"""Load the GenAI nodes of a bundle: prompt, llm, knowledge, retrieve and answer checks.

Copied into every bundle. Each loader returns what the executor calls with the node's
arguments (``render(**variables)``, ``client(prompt=…)``, ``retrieve(query=…)``,
``check(answer=…)``); a knowledge node loads its index, which retrieve nodes search and
nothing calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._answers import check_answer
from ._errors import ModelError
from ._llm import ChatClient, Endpoint
from ._prompt import load_prompt
from ._retrieval import Bm25Index

KINDS = frozenset({"prompt", "llm", "knowledge", "retrieve", "parse"})


def folder(spec: Mapping[str, Any]) -> str:
    """The node's folder in the bundle: ``objects/NODE``."""
    return f"objects/{spec['name']}"


def load_genai(
    spec: Mapping[str, Any],
    files: Mapping[str, bytes],
    nodes: Mapping[str, Mapping[str, Any]],
    indexes: dict[str, Bm25Index],
    environ: Mapping[str, str] | None = None,
    endpoint: Endpoint | None = None,
) -> Any:
    """What the executor runs for the GenAI node ``spec`` (a knowledge node: its index).

    ``indexes`` caches knowledge indexes by node, so each loads once. An llm node calls
    ``endpoint`` when given, else the one ``environ`` (default ``os.environ``) names.
    Raises ModelError naming the node.
    """
    kind = spec["kind"]
    name = spec["name"]
    try:
        if kind == "knowledge":
            return _index(name, files, indexes)
        if kind == "prompt":
            return load_prompt(folder(spec), files)
        if kind == "llm":
            settings = json.loads(files[spec["file"]])
            if endpoint is None:
                endpoint = Endpoint.from_environ(os.environ if environ is None else environ)
            return _llm_call(ChatClient(name, settings, endpoint, messages=bool(spec["messages"])))
        if kind == "retrieve":
            if nodes.get(spec["knowledge"], {}).get("kind") != "knowledge":
                raise ModelError(f"'{spec['knowledge']}' is not a knowledge node")
            index = _index(spec["knowledge"], files, indexes)
            return _retriever(index, int(spec["top_k"]), str(spec["separator"]))
        if kind == "parse":
            document = json.loads(files[spec["file"]])
            return _checker(document["schema"], document["fallback"])
    except ModelError as exc:
        raise ModelError(f"{kind} '{name}': {exc}") from None
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{kind} '{name}' cannot be loaded: {type(exc).__name__}: {exc}") from None
    raise ModelError(f"node '{name}' has unknown kind '{kind}'")


def _index(name: str, files: Mapping[str, bytes], indexes: dict[str, Bm25Index]) -> Bm25Index:
    index = indexes.get(name)
    if index is None:
        index = indexes[name] = Bm25Index(f"objects/{name}", files)
    return index


def _llm_call(client: ChatClient) -> Callable[..., Any]:
    def call(prompt: Any) -> Any:
        return client(prompt)

    call.client = client  # type: ignore[attr-defined]  # tests and hosts reach the settings
    return call


def _retriever(index: Bm25Index, top_k: int, separator: str) -> Callable[..., Any]:
    def retrieve(query: Any) -> Any:
        queries = np.asarray(query, dtype=object).tolist()
        out = np.empty(len(queries), dtype=object)
        out[:] = [
            separator.join(p.text for p in index.search(q, top_k)) if q is not None else None
            for q in queries
        ]
        return out

    return retrieve


def _checker(schema: Mapping[str, Any], fallback: Any) -> Callable[..., Any]:
    def check(answer: Any) -> Any:
        answers = np.asarray(answer, dtype=object).tolist()
        out = np.empty(len(answers), dtype=object)
        out[:] = [
            json.dumps(check_answer(a, schema, fallback), ensure_ascii=False) for a in answers
        ]
        return out

    return check
