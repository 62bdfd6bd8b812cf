"""What a batch job's files and options may be: formats, locations, where rejects go.

The registry checks a job against these rules when it is submitted (so a job that cannot
run is refused at once, over HTTP too); the batch engines follow the same rules when they
read and write the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ..errors import InvalidInput, UsageError

BATCH_FORMATS = ("csv", "parquet", "jsonl")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
SUFFIXES[".ndjson"] = "jsonl"
BATCH_OPTIONS = ("format", "input_format", "id_column", "outputs", "chunk_rows", "workers")


def is_remote(location: str) -> bool:
    """True for an ``s3://`` URI."""
    return location.startswith("s3://")


def file_format(location: str, given: str | None = None) -> str:
    """``given`` if set, else the format named by the location's suffix (.csv, .parquet, …).

    Raises UsageError for an unknown format or suffix.
    """
    if given is not None:
        if given not in BATCH_FORMATS:
            raise UsageError(f"unknown format '{given}' (formats: {', '.join(BATCH_FORMATS)})")
        return given
    suffix = PurePosixPath(location).suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(
            f"'{location}': cannot tell the format from the suffix "
            f"(use .csv, .parquet or .jsonl, or give --format)"
        )
    return SUFFIXES[suffix]


def batch_formats(
    input: str, output: str, format: str | None, input_format: str | None
) -> tuple[str, str]:
    """``(input format, output format)``: given, or from the suffixes; the output's defaults
    to the input's when its suffix names none. Raises UsageError."""
    source = file_format(input, input_format)
    if format is None and PurePosixPath(output).suffix.lower() not in SUFFIXES:
        return source, source
    return source, file_format(output, format)


def rejects_location(output: str) -> str:
    """Where the rejects of ``output`` go: beside it, ``NAME.rejects.jsonl``."""
    path = PurePosixPath(output)
    stem = path.stem if path.suffix.lower() in SUFFIXES else path.name
    return output[: len(output) - len(path.name)] + f"{stem}.rejects.jsonl"


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run options of a job, checked: format, input_format, id_column, outputs, chunk_rows,
    workers (None values are dropped). Raises InvalidInput naming the first bad one."""
    checked: dict[str, Any] = {}
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name not in BATCH_OPTIONS:
            raise InvalidInput(
                f"unknown batch option '{name}' (options: {', '.join(BATCH_OPTIONS)})"
            )
        if name in ("format", "input_format") and value not in BATCH_FORMATS:
            raise InvalidInput(f"option '{name}' must be one of {', '.join(BATCH_FORMATS)}")
        if name == "id_column" and not isinstance(value, str):
            raise InvalidInput("option 'id_column' must be a column name")
        if name == "outputs" and not (
            isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        ):
            raise InvalidInput("option 'outputs' must be a list of node names")
        if name in ("chunk_rows", "workers") and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidInput(f"option '{name}' must be a whole number of at least 1")
        checked[name] = value
    return checked


def check_location(kind: str, location: str) -> str:
    """A job's input or output ``location``: an absolute path or an s3:// URI.

    Raises InvalidInput otherwise: a worker does not share the submitter's working folder.
    """
    if not isinstance(location, str) or not location:
        raise InvalidInput(f"the {kind} location is required")
    if not is_remote(location) and not os.path.isabs(location):
        raise InvalidInput(
            f"the {kind} location '{location}' must be an absolute path or an s3:// URI "
            "(a worker does not share your working folder)"
        )
    return location


def check_files(input: str, output: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A job's locations and options, checked together; returns the checked options.

    Raises InvalidInput (a relative location, an unknown option or format, a suffix that
    names no format).
    """
    check_location("input", input)
    check_location("output", output)
    checked = check_options(options)
    try:
        batch_formats(input, output, checked.get("format"), checked.get("input_format"))
    except UsageError as exc:
        raise InvalidInput(str(exc)) from None
    return checked
