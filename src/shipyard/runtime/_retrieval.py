"""Lexical retrieval over a knowledge node: chunking, a BM25 index stored as arrays, search.

Copied into every bundle. Export chunks the knowledge files and builds the index with
these same functions, so the words a query is split into are the words the index holds.
The index is JSON (vocabulary, parameters) plus ``.npy`` arrays read with
``allow_pickle=False``: nothing in it can run code.

Files of a knowledge node ``objects/NODE/``: ``files/…`` (the documents as given),
``chunks.json`` (``[{file, start_line, end_line, text}]``), ``index.json``
(``{"method": "bm25", "k1", "b", "average_length", "terms": [...]}``, terms sorted) and
``lengths.npy`` (words per chunk), ``starts.npy`` (where each term's postings begin, one
more than there are terms), ``chunk_ids.npy`` and ``counts.npy`` (the postings: which
chunk, how often).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import ModelError

# A word is a run of letters or digits; case is folded.
_WORD = re.compile(r"[^\W_]+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")

ARRAYS = ("lengths", "starts", "chunk_ids", "counts")
K1 = 1.2
B = 0.75


def words(text: str) -> list[str]:
    """The words of ``text``, case-folded: what the index and a query are made of."""
    return [w.casefold() for w in _WORD.findall(text)]


def chunk_text(file: str, text: str, size: int) -> list[dict[str, Any]]:
    """``text`` cut into chunks of at most ``size`` words, along paragraphs where it can.

    Paragraphs (separated by blank lines) are packed whole into a chunk while they fit; a
    Markdown heading (``# …``) always starts a new chunk, so a section keeps its title; a
    paragraph longer than ``size`` words is cut by words. Each chunk records its file and
    first and last line (1-based).
    """
    chunks: list[dict[str, Any]] = []
    pending: list[tuple[int, int, str]] = []  # (first line, last line, text) of paragraphs
    pending_words = 0

    def flush() -> None:
        nonlocal pending, pending_words
        if pending:
            body = "\n\n".join(p[2] for p in pending)
            chunks.append(
                {
                    "file": file,
                    "start_line": pending[0][0],
                    "end_line": pending[-1][1],
                    "text": body,
                }
            )
        pending, pending_words = [], 0

    position = 0
    for match in [*_BLANK_LINE.finditer(text), None]:
        end = match.start() if match else len(text)
        raw = text[position:end]
        first_line = text.count("\n", 0, position) + 1 + (len(raw) - len(raw.lstrip("\n")))
        paragraph = raw.strip()
        position = match.end() if match else len(text)
        if not paragraph:
            continue
        last_line = first_line + paragraph.count("\n")
        count = len(words(paragraph))
        if count > size:
            flush()
            tokens = paragraph.split()
            for start in range(0, len(tokens), size):
                piece = " ".join(tokens[start : start + size])
                chunks.append(
                    {"file": file, "start_line": first_line, "end_line": last_line, "text": piece}
                )
            continue
        if pending_words + count > size or paragraph.startswith("#"):
            flush()
        pending.append((first_line, last_line, paragraph))
        pending_words += count
    flush()
    return chunks


def build_index(texts: Sequence[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A BM25 index of ``texts``: its ``index.json`` document and its arrays by name."""
    counted = [Counter(words(t)) for t in texts]
    terms = sorted({term for counts in counted for term in counts})
    position = {term: i for i, term in enumerate(terms)}
    postings: list[list[tuple[int, int]]] = [[] for _ in terms]
    for chunk, counts in enumerate(counted):
        for term, count in sorted(counts.items()):
            postings[position[term]].append((chunk, count))
    lengths = np.array([sum(c.values()) for c in counted], dtype=np.int64)
    starts = np.zeros(len(terms) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(p) for p in postings], dtype=np.int64)
    flat = [entry for p in postings for entry in p]
    average = float(lengths.mean()) if len(lengths) else 0.0
    document: dict[str, Any] = {
        "method": "bm25",
        "k1": K1,
        "b": B,
        "average_length": average,
        "terms": terms,
    }
    arrays: dict[str, np.ndarray] = {
        "lengths": lengths,
        "starts": starts,
        "chunk_ids": np.array([c for c, _ in flat], dtype=np.int64),
        "counts": np.array([n for _, n in flat], dtype=np.int64),
    }
    return document, arrays


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in the ``.npy`` format (no pickled objects: numbers only)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk: its number in ``chunks.json``, BM25 score, file and text."""

    chunk: int
    score: float
    file: str
    text: str


class Bm25Index:
    """A knowledge node's index, loaded from its verified files."""

    def __init__(self, folder: str, files: Mapping[str, bytes]) -> None:
        try:
            document = json.loads(files[f"{folder}/index.json"])
            self.chunks: list[dict[str, Any]] = json.loads(files[f"{folder}/chunks.json"])
            arrays = {
                name: np.load(io.BytesIO(files[f"{folder}/{name}.npy"]), allow_pickle=False)
                for name in ARRAYS
            }
        except (KeyError, ValueError) as exc:
            raise ModelError(f"the index in '{folder}/' cannot be read: {exc}") from None
        if document.get("method") != "bm25":
            raise ModelError(f"'{folder}/index.json' names an unknown method")
        self.k1 = float(document["k1"])
        self.b = float(document["b"])
        self.average = float(document["average_length"]) or 1.0
        self.terms = {term: i for i, term in enumerate(document["terms"])}
        self.lengths = arrays["lengths"].astype(np.float64)
        self.starts = arrays["starts"]
        self.chunk_ids = arrays["chunk_ids"]
        self.counts = arrays["counts"].astype(np.float64)
        consistent = (
            len(self.lengths) == len(self.chunks)
            and len(self.starts) == len(self.terms) + 1
            and len(self.chunk_ids) == len(self.counts) == int(self.starts[-1])
            and (len(self.chunk_ids) == 0 or int(self.chunk_ids.max()) < len(self.chunks))
        )
        if not consistent:
            raise ModelError(f"the index in '{folder}/' does not match its chunks")
        documents = len(self.chunks)
        frequency = np.diff(self.starts).astype(np.float64)
        self.idf = np.log(1.0 + (documents - frequency + 0.5) / (frequency + 0.5))

    def search(self, query: str, top_k: int) -> list[Passage]:
        """The ``top_k`` chunks that score highest for ``query`` (only those sharing a word).

        Ties go to the earlier chunk, so a query always retrieves the same passages.
        """
        scores = np.zeros(len(self.chunks), dtype=np.float64)
        norm = self.k1 * (1.0 - self.b + self.b * self.lengths / self.average)
        for term in set(words(query)):
            i = self.terms.get(term)
            if i is None:
                continue
            start, stop = int(self.starts[i]), int(self.starts[i + 1])
            ids = self.chunk_ids[start:stop]
            tf = self.counts[start:stop]
            scores[ids] += self.idf[i] * tf * (self.k1 + 1.0) / (tf + norm[ids])
        order = np.lexsort((np.arange(len(scores)), -scores))[:top_k]
        return [
            Passage(int(c), float(scores[c]), self.chunks[c]["file"], self.chunks[c]["text"])
            for c in order
            if scores[c] > 0.0
        ]
