"""What a batch job's files and options may be: formats, locations, where rejects go.

The registry checks a job against these rules when it is submitted (so a job that cannot
run is refused at once, over HTTP too); the batch engines follow the same rules when they
read and write the files, and a worker checks the locations again against its own batch
roots (see ``_roots``) before it runs a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ..errors import InvalidInput, UsageError
from ._roots import Roots, batch_roots

BATCH_FORMATS = ("csv", "parquet", "jsonl")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
SUFFIXES[".ndjson"] = "jsonl"
BATCH_OPTIONS = ("format", "input_format", "id_column", "outputs", "chunk_rows", "workers")


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
    """Where the rejects of ``output`` go: beside it, ``NAME.rejects.jsonl`` for the whole
    name (``scores.csv.rejects.jsonl``), so two outputs in one folder never share one."""
    return output.rstrip("/") + ".rejects.jsonl"


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


def check_location(kind: str, location: str, roots: Roots | None = None) -> str:
    """Where a job's input or output ``location`` is on this host, if it may be used at all.

    A location is a path under the batch ``roots`` (default: this host's, see ``batch_roots``;
    a relative path goes under the first root) or an s3:// URI under one of their prefixes.
    Raises InvalidInput when it is missing or neither, PermissionDenied naming the location
    and the roots when it is outside them (symlinks and ``..`` resolved).
    """
    if not isinstance(location, str) or not location:
        raise InvalidInput(f"the {kind} location is required")
    return (roots or batch_roots()).locate(location, f"the {kind} location")


def check_files(
    input: str, output: str, options: Mapping[str, Any] | None, roots: Roots | None = None
) -> dict[str, Any]:
    """A job's locations and options, checked together; returns the checked options.

    Raises PermissionDenied (a location outside the batch roots) or InvalidInput (an
    unknown option or format, a suffix that names no format).
    """
    roots = roots or batch_roots()
    check_location("input", input, roots)
    check_location("rejects", rejects_location(check_location("output", output, roots)), roots)
    checked = check_options(options)
    try:
        batch_formats(input, output, checked.get("format"), checked.get("input_format"))
    except UsageError as exc:
        raise InvalidInput(str(exc)) from None
    return checked
