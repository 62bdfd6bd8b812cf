"""Knowledge is chunked along its sections and searched with BM25 from arrays that cannot
run code; a damaged index is refused rather than read out of bounds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import ModelError
from shipyard.runtime._retrieval import Bm25Index, build_index, chunk_text, npy_bytes

POLICY = Path(__file__).resolve().parents[2] / "examples" / "genai" / "policy.md"


def _index_files(texts: list[str]) -> dict[str, bytes]:
    chunks = [{"file": "doc.md", "start_line": 1, "end_line": 1, "text": t} for t in texts]
    document, arrays = build_index(texts)
    files = {
        "k/index.json": json.dumps(document).encode(),
        "k/chunks.json": json.dumps(chunks).encode(),
    }
    files.update({f"k/{name}.npy": npy_bytes(array) for name, array in arrays.items()})
    return files


def test_each_markdown_section_starts_its_own_chunk_with_its_lines() -> None:
    chunks = chunk_text("policy.md", POLICY.read_text(), 60)
    titles = [c["text"].split("\n")[0] for c in chunks]
    assert titles == [
        "# Personal loan policy (example)",
        "## Income",
        "## Debt to income",
        "## Loan purpose",
        "## Employment",
        "## Decisions",
    ]
    lines = POLICY.read_text().split("\n")
    employment = chunks[4]
    assert lines[employment["start_line"] - 1] == "## Employment"
    assert lines[employment["end_line"] - 1].endswith("referred.")


def test_a_paragraph_longer_than_a_chunk_is_cut_by_words() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_text("long.txt", text, 10)
    assert [len(c["text"].split()) for c in chunks] == [10, 10, 5]


def test_the_best_matching_chunk_comes_first_and_ties_go_to_the_earlier_one() -> None:
    index = Bm25Index(
        "k", _index_files(["cats and dogs", "dogs dogs dogs bark", "birds sing", "cats and dogs"])
    )
    assert [p.chunk for p in index.search("dogs", 4)] == [1, 0, 3]
    assert [p.chunk for p in index.search("cats", 4)] == [0, 3]
    assert index.search("fish", 3) == []  # nothing shares a word: nothing is retrieved
    assert [p.chunk for p in index.search("DOGS!", 1)] == [1]  # case and punctuation fold


def test_the_index_arrays_are_plain_numbers_that_load_without_pickle() -> None:
    files = _index_files(["a b", "b c"])
    for name in ("lengths", "starts", "chunk_ids", "counts"):
        array = np.load(io.BytesIO(files[f"k/{name}.npy"]), allow_pickle=False)
        assert array.dtype == np.int64


def test_an_index_whose_postings_point_past_its_chunks_is_refused() -> None:
    files = _index_files(["a b", "b c"])
    files["k/chunk_ids.npy"] = npy_bytes(np.array([0, 1, 7, 1], dtype=np.int64))
    with pytest.raises(ModelError, match="does not match its chunks"):
        Bm25Index("k", files)


def test_an_index_holding_pickled_objects_is_refused() -> None:
    files = _index_files(["a b"])
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    files["k/counts.npy"] = buffer.getvalue()
    with pytest.raises(ModelError, match="cannot be read"):
        Bm25Index("k", files)
