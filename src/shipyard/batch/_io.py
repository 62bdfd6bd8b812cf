"""Files in and out of a batch run: CSV, Parquet and JSON Lines, streamed in chunks.

A location is a local path or an ``s3://bucket/key`` URI (through pyarrow's filesystems;
``SHIPYARD_S3_ENDPOINT_URL`` points at an S3-compatible server). ``Source`` reads a file
chunk by chunk, numbering the records it reads (``_row``, from 0); ``Sink`` writes one
under a temporary name beside its final one, and ``commit`` moves it into place, so a
file under the final name is always complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.json as pjson
import pyarrow.parquet as pq

from ..errors import UsageError

# The registry holds the rules of a batch job's files (it checks them at submission);
# the engines take them from here.
from ..registry import batch_formats as formats  # noqa: F401
from ..registry import rejects_location  # noqa: F401
from ._reasons import json_record, wrong_field_count

ROW = "_row"  # the record's number in its input file, carried when no id column is named
S3_ENDPOINT_ENV = "SHIPYARD_S3_ENDPOINT_URL"
_CSV_BLOCK = 1 << 20  # with pyarrow's read-ahead, memory is a few blocks: keep them small


def is_remote(location: str) -> bool:
    """True for an ``s3://`` URI."""
    return location.startswith("s3://")


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem holding ``location`` and the path on it.

    Raises UsageError for an unsupported URI scheme.
    """
    if is_remote(location):
        bucket_key = location[len("s3://") :]
        endpoint = os.environ.get(S3_ENDPOINT_ENV)
        options: dict[str, Any] = {"endpoint_override": endpoint} if endpoint else {}
        if endpoint and endpoint.startswith("http://"):
            options["scheme"] = "http"
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if region:
            options["region"] = region
        return pafs.S3FileSystem(**options), bucket_key
    if "://" in location:
        raise UsageError(f"'{location}': batch reads local paths and s3:// URIs only")
    return pafs.LocalFileSystem(), os.path.abspath(location)


@dataclass
class Chunk:
    """Records read together: ``batch`` holds the columns read and ``_row``.

    ``unreadable`` lists the records that could not be read at all, as ``(row number or
    None, message)``: a JSON line that is not an object, a CSV line with the wrong number
    of fields. They keep their numbers: ``_row`` skips them.
    """

    batch: pa.RecordBatch
    unreadable: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Records in the chunk, read or not."""
        return self.batch.num_rows + len(self.unreadable)


class _Counted(io.RawIOBase):
    """A pyarrow input stream that counts the bytes read (input streams cannot ``tell``)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


class Source:
    """One input file, read ``chunk_rows`` records at a time (a context manager).

    ``columns`` are the columns to read when present (others are skipped). CSV columns
    are read as text, typed later where the bundle declares them, so a bad value rejects
    one row instead of failing its whole block; JSON Lines are read in blocks of lines,
    line by line only in a block that pyarrow cannot read whole. Raises UsageError when
    the file cannot be opened or read.
    """

    def __init__(
        self, location: str, fmt: str, columns: Sequence[str], chunk_rows: int = 50_000
    ) -> None:
        if chunk_rows < 1:
            raise UsageError("--chunk-rows must be at least 1")
        self.location = location
        self.format = fmt
        self.chunk_rows = chunk_rows
        self._fs, self._path = filesystem(location)
        info = self._fs.get_file_info(self._path)
        if info.type != pafs.FileType.File:
            raise UsageError(f"input file '{location}' does not exist")
        self.size = info.size or 0
        self.total_rows: int | None = None
        self._counted: _Counted | None = None
        self._parquet: pq.ParquetFile | None = None
        self._unreadable: list[tuple[int | None, str]] = []
        self._rows_read = 0
        wanted = list(dict.fromkeys(columns))
        try:
            if fmt == "parquet":
                # pre_buffer would read every row group of the file ahead, at once
                source = self._fs.open_input_file(self._path)
                self._parquet = pq.ParquetFile(source, pre_buffer=False)
                self.total_rows = self._parquet.metadata.num_rows
                self.names: list[str] | None = list(self._parquet.schema_arrow.names)
            elif fmt == "csv":
                with io.BufferedReader(_Counted(self._fs.open_input_stream(self._path))) as head:
                    first = head.readline().decode("utf-8-sig")
                self.names = next(csv.reader([first]), [])
            else:
                self.names = None  # JSON Lines have no header: records name their columns
        except (OSError, pa.ArrowException) as exc:
            self.close()
            raise UsageError(f"cannot read '{location}': {exc}") from None
        self._read = [n for n in wanted if self.names is None or n in self.names]

    def fraction(self) -> float | None:
        """How much of the file has been read, 0 to 1 (None when unknown)."""
        if self._counted is not None and self.size > 0:
            return min(1.0, self._counted.position / self.size)
        if self.total_rows:
            return min(1.0, self._rows_read / self.total_rows)
        return None

    def chunks(self) -> Iterator[Chunk]:
        """The file's records, ``chunk_rows`` at a time, numbered from 0 in ``_row``.

        Raises UsageError when the file turns out unreadable midway.
        """
        try:
            if self.format == "jsonl":
                yield from self._jsonl()
                return
            if self._parquet is not None:  # batches of at most chunk_rows already
                batches: Iterator[pa.RecordBatch] = self._parquet.iter_batches(
                    batch_size=self.chunk_rows, columns=self._read, use_threads=True
                )
            else:
                batches = rechunk(self._csv(), self.chunk_rows)
            start = 0
            for batch in batches:
                if not batch.num_rows:
                    continue
                chunk, start = self._placed(batch, start)
                self._rows_read = start
                yield chunk
            if self._unreadable:
                empty = pa.RecordBatch.from_pydict(
                    {n: pa.array([], pa.string()) for n in self._read}
                )
                yield Chunk(number_rows(empty, start), self._take_unreadable())
        except pa.ArrowException as exc:
            raise UsageError(f"cannot read '{self.location}': {exc}") from None

    def _take_unreadable(self) -> list[tuple[int | None, str]]:
        taken, self._unreadable = self._unreadable, []
        return taken

    def _placed(self, batch: pa.RecordBatch, start: int) -> tuple[Chunk, int]:
        """``batch``'s records as a chunk numbered from ``start``, and the next number.

        A CSV line that could not be read keeps its number (the rows after it are numbered
        as the records they are in the file, as Spark numbers them); the unreadable lines
        up to the batch's last row come with its chunk.
        """
        unknown = [r for r in self._unreadable if r[0] is None]
        known = sorted((r[0], r[1]) for r in self._unreadable if r[0] is not None)
        early = [r for r in known if r[0] < start]  # not expected: kept, without a gap
        ahead = [r for r in known if r[0] >= start]
        gaps = np.array([number for number, _ in ahead], dtype=np.int64)
        # the readable rows between `start` and each gap; row i comes after every gap
        # with at most i readable rows before it
        before = gaps - start - np.arange(len(gaps))
        places = np.arange(batch.num_rows)
        rows = start + places + np.searchsorted(before, places, side="right")
        end = int(rows[-1]) + 1
        taken = [r for r in ahead if r[0] < end]
        self._unreadable = [r for r in ahead if r[0] >= end]
        numbered = batch.append_column(ROW, pa.array(rows, pa.int64()))
        return Chunk(numbered, [*early, *taken, *unknown]), end

    def _open_counted(self) -> _Counted:
        self._counted = _Counted(self._fs.open_input_stream(self._path))
        return self._counted

    def _csv(self) -> Iterator[pa.RecordBatch]:
        def skip(row: Any) -> str:
            # row.number counts records from 1 with the header; known on one thread only
            number = None if row.number is None else row.number - 2
            reason = wrong_field_count(row.actual_columns, row.expected_columns, row.text)
            self._unreadable.append((number, reason))
            return "skip"

        reader = pcsv.open_csv(
            io.BufferedReader(self._open_counted(), buffer_size=_CSV_BLOCK),
            # one thread: the parser then numbers a bad line (no slower here, measured)
            read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=skip),
            convert_options=pcsv.ConvertOptions(
                include_columns=self._read,
                column_types={name: pa.string() for name in self._read},
                # only an empty field is missing: "NA" may be Namibia, "null" a word
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
        yield from reader

    def _jsonl(self) -> Iterator[Chunk]:
        lines = (
            line for line in io.BufferedReader(self._open_counted(), _CSV_BLOCK) if line.strip()
        )
        start = 0
        while block := list(itertools.islice(lines, self.chunk_rows)):
            chunk = self._json_block(block, start)
            start += chunk.rows
            yield chunk

    def _json_block(self, lines: list[bytes], start: int) -> Chunk:
        text = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        try:
            text.decode("utf-8")  # pyarrow reads bytes that are not UTF-8 into its strings
            table = pjson.read_json(
                io.BytesIO(text), read_options=pjson.ReadOptions(block_size=len(text) + 1)
            )
            if table.num_rows == len(lines):  # not so when a line holds two objects
                found = set(table.column_names)
                columns = {n: table.column(n).combine_chunks() for n in self._read if n in found}
                return Chunk(self._numbered(columns, range(start, start + len(lines))))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            pass  # a line that is not one JSON object, or a column whose type changes
        # Line by line: orjson reads the good ones quickly, and json_record (as the Spark
        # engine reads every line) decides on any orjson refuses, and words its reason.
        records: list[dict[str, Any]] = []
        rows: list[int] = []
        unreadable: list[tuple[int | None, str]] = []
        for i, line in enumerate(lines):
            decoded = line.decode("utf-8", errors="replace")
            try:
                record = orjson.loads(decoded)
            except orjson.JSONDecodeError:
                record = None
            if type(record) is not dict:
                record, reason = json_record(decoded)
                if record is None:
                    unreadable.append((start + i, reason or "line is not a JSON object"))
                    continue
            records.append(record)
            rows.append(start + i)
        names = [n for n in self._read if any(n in r for r in records)]
        columns = {n: _loose_array([r.get(n) for r in records]) for n in names}
        return Chunk(self._numbered(columns, rows), unreadable)

    def _numbered(self, columns: dict[str, pa.Array], rows: Sequence[int]) -> pa.RecordBatch:
        """JSON records as a batch with ``_row``; a column no record has is all null."""
        nulls = {n: pa.nulls(len(rows)) for n in self._read if n not in columns}
        return pa.RecordBatch.from_pydict({**columns, **nulls, ROW: pa.array(rows, pa.int64())})

    def close(self) -> None:
        """Close the file."""
        if self._counted is not None:
            self._counted.close()
            self._counted = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _loose_array(values: list[Any]) -> pa.Array:
    """Values of one JSON column; mixed types become text, for validation to name."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # overflow: an int past 64 bits
        text = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        return pa.array(text, type=pa.string())


def number_rows(batch: pa.RecordBatch, start: int) -> pa.RecordBatch:
    """``batch`` with ``_row`` = start, start + 1, …"""
    return batch.append_column(ROW, pa.array(np.arange(start, start + batch.num_rows)))


def rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of ``rows`` rows (the last may be shorter) from batches of any size.

    Slices of one batch are yielded as they are (no copy); only rows that span batches
    are copied into one.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == rows:
                yield _joined(pending)
                pending, held = [], 0
    if held:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


class Sink:
    """An output file written under a temporary name beside ``location`` (a context manager).

    ``write`` appends record batches (cast to the first batch's schema); ``commit`` closes
    the file and moves it to ``location``, replacing what was there; leaving the context
    without ``commit`` deletes the temporary file. A killed process leaves at most a
    hidden ``.NAME.*.partial`` file, never a file under the final name.
    """

    def __init__(self, location: str, fmt: str, metadata: dict[bytes, bytes] | None = None) -> None:
        self.location = location
        self.format = fmt
        self.metadata = metadata  # a Parquet file's schema metadata; other formats have none
        self._fs, self._path = filesystem(location)
        path = PurePosixPath(self._path)
        folder = self._fs.get_file_info(str(path.parent))
        if not is_remote(location) and folder.type != pafs.FileType.Directory:
            raise UsageError(f"output folder '{path.parent}' does not exist")
        self.temporary = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._stream: Any = None
        self._writer: Any = None
        self._done = False

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._stream = self._fs.open_output_stream(self.temporary)
        if self.format == "csv":
            self._writer = pcsv.CSVWriter(self._stream, _csv_schema(schema))
        elif self.format == "parquet":
            stored = schema.with_metadata(self.metadata) if self.metadata else schema
            self._writer = pq.ParquetWriter(self._stream, stored)

    def write(self, batch: pa.RecordBatch) -> None:
        """Append ``batch``. Raises UsageError when its columns cannot take the file's types."""
        if self.schema is None:
            self._open(batch.schema)
        elif batch.schema != self.schema:
            try:
                batch = batch.cast(self.schema)
            except (pa.ArrowException, ValueError) as exc:
                raise UsageError(
                    f"'{self.location}': a chunk's columns ({batch.schema.types}) do not fit "
                    f"the file's ({self.schema.types}): {exc}"
                ) from None
        self.rows += batch.num_rows
        if self.format == "jsonl":
            self._write_json(batch.to_pylist())
        elif self.format == "csv":
            self._writer.write_batch(_csv_batch(batch))
        else:
            self._writer.write_batch(batch)

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Append JSON records (a JSON Lines sink)."""
        if self._stream is None:
            self._open(pa.schema([]))
        self.rows += len(records)
        self._write_json(records)

    def _write_json(self, records: Sequence[dict[str, Any]]) -> None:
        line = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
        self._stream.write(b"".join(orjson.dumps(r, option=line) for r in records))

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def commit(self, schema: pa.Schema | None = None) -> None:
        """Finish the file and move it to its final name.

        A sink that got no rows writes an empty file of ``schema`` (a CSV header, a
        Parquet schema).
        """
        if self._stream is None:
            self._open(schema if schema is not None else pa.schema([]))
        self._close()
        self._fs.move(self.temporary, self._path)  # a rename on a local disk
        self._done = True

    def discard(self) -> None:
        """Close and delete the temporary file (nothing is left under either name)."""
        self._close()
        if not self._done:
            self._done = True
            with contextlib.suppress(OSError, pa.ArrowException):
                self._fs.delete_file(self.temporary)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_list(f.type) else f for f in schema]
    )


def _csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """CSV cannot hold lists: a list column (an embedding) is written as JSON text."""
    if not any(pa.types.is_list(f.type) for f in batch.schema):
        return batch
    arrays = [
        pa.array(
            [None if v is None else orjson.dumps(v).decode() for v in column.to_pylist()],
            pa.string(),
        )
        if pa.types.is_list(column.type)
        else column
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
