"""How a batch run scores a file: one options object for both engines and for queued jobs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_ARROW_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class BatchOptions:
    """How to score a file: formats, id column, outputs, signature check, each engine's knobs.

    ``format`` is the output's (default: from its suffix, else the input's); ``input_format``
    the input's (default: from its suffix). ``id_column`` is copied to the output and to the
    reject records (default: ``_row``, the record's number in the input from 0).
    ``outputs`` names the nodes to write (default: the pipeline's outputs). ``public_key``
    makes loading check the bundle's signature (a PEM path or its bytes). ``allow_unsafe``
    False refuses plain pickles and skops types beyond Shipyard's allow-list; a run of an
    environment's deployed version sets both from the registry's trust (its trusted key
    that signed the bundle, and the environment's ``allow_pickle``). ``provenance`` is what
    the result records beside the bundle's own name, version and digest: a deployed run's
    project, environment, revision, model and version. ``app_config`` is what features and
    rules that read app config see (a deployed run: the component's app config in that
    environment; otherwise their defaults).

    ``endpoint`` (a ``shipyard.runtime.Endpoint``) is where llm nodes call (default: the
    host's SHIPYARD_LLM_* variables); a deployed version's run takes it from the
    environment config's ``llm`` entry (``shipyard.registry.llm_endpoint``).

    Local engine: ``chunk_rows`` records are scored at a time, in ``workers`` processes.
    Spark engine: a session on ``master`` (when none is active), ``arrow_batch_rows`` rows
    per Arrow batch sent to the Python workers. Each engine ignores the other's knobs.
    """

    format: str | None = None
    input_format: str | None = None
    id_column: str | None = None
    outputs: Sequence[str] | None = None
    public_key: str | bytes | os.PathLike[str] | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    workers: int = 1
    master: str = "local[*]"
    arrow_batch_rows: int = DEFAULT_ARROW_BATCH_ROWS
    allow_unsafe: bool = True
    provenance: Mapping[str, Any] | None = None
    app_config: Mapping[str, Any] | None = None
    endpoint: Any = None  # shipyard.runtime.Endpoint (imported with numpy, not here)
