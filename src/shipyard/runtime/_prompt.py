"""Render a prompt node's Jinja2 templates in a sandbox, with strict undefined variables.

Copied into every bundle. Jinja2 is imported only when a bundle holds a prompt node (its
``versions.json`` and ``requirements.txt`` then list it). The sandbox refuses access to
unsafe attributes (``__class__``, …), and a variable the template reads but the row does
not give raises instead of rendering as an empty string.

A prompt node's folder ``objects/NODE/`` holds ``prompt.json`` (``form``: ``text`` or
``chat``; ``messages``: ``[{role, file}]``; ``variables``: name → reference) and one
``.jinja`` file per message, each usable on its own by a production system.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._errors import ModelError

ROLES = ("system", "user", "assistant")


def prompt_environment() -> Any:
    """The Jinja2 environment every prompt renders in: sandboxed, StrictUndefined, no escaping."""
    try:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment
    except ImportError as exc:
        raise ModelError(
            "prompt nodes need the 'jinja2' package: install the bundle's requirements.txt"
        ) from exc
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def load_prompt(folder: str, files: Mapping[str, bytes]) -> Callable[..., Any]:
    """``render(**variables) -> array`` of one prompt per row, from ``folder``'s verified files.

    A chat prompt renders as JSON text ``[{"role", "content"}, …]``, a text prompt as its
    text. Raises ModelError when the files are missing or a template does not compile.
    """
    try:
        document = json.loads(files[f"{folder}/prompt.json"])
        env = prompt_environment()
        templates = [
            (m["role"], env.from_string(files[f"{folder}/{m['file']}"].decode("utf-8")))
            for m in document["messages"]
        ]
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"the prompt in '{folder}/' cannot be loaded: {exc}") from None
    chat = document.get("form") == "chat"

    def render(**variables: Any) -> Any:
        names = list(variables)
        columns = [np.asarray(variables[n]).tolist() for n in names]
        rows = len(columns[0]) if columns else 0

        def one(context: Mapping[str, Any]) -> str:
            rendered = [(role, template.render(context)) for role, template in templates]
            if chat:
                return json.dumps(
                    [{"role": role, "content": text} for role, text in rendered],
                    ensure_ascii=False,
                )
            return rendered[0][1]

        if not names:
            return one({})  # the same prompt for every row
        out = np.empty(rows, dtype=object)
        out[:] = [one(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
        return out

    return render
