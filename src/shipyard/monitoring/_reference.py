"""A bundle's reference profile, read as what each drift test can use.

Profile format 2 (bundles exported since monitoring) holds decile bins, percentiles and
the outputs' profile; format 1 only a 10-bin histogram, quantiles and the top categories.
``Reference.skipped`` says which tests a profile cannot support, so a drift run on an
old bundle does what it can and says what it did not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArtifactError
from ..runtime import Artifact

PROFILE = "reference/profile.json"
NUMERIC_TESTS = ("psi", "ks")
CATEGORY_TESTS = ("chi2", "js")


@dataclass(frozen=True)
class ColumnReference:
    """What the profile kept of one column (``TABLE.COLUMN``, or ``output.NODE``).

    ``kind`` is ``numeric`` or ``categorical``. Numbers: ``cuts`` and ``counts`` are the
    PSI bins (``right_closed``: (a, b] bins; format 1's histogram is [a, b)),
    ``percentiles`` the 101 for KS (None in format 1), ``histogram`` the 10 equal-width
    bins for plots. Categories: ``categories`` (top 50 with counts) and ``other``.
    """

    column: str
    kind: str
    count: int
    nulls: int
    cuts: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    right_closed: bool = True
    percentiles: tuple[float, ...] | None = None
    histogram: tuple[tuple[float, ...], tuple[int, ...]] | None = None
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def tests(self) -> tuple[str, ...]:
        """The tests this column's profile supports."""
        if self.kind == "categorical":
            return CATEGORY_TESTS
        return ("psi", "ks") if self.percentiles is not None else ("psi",)

    @property
    def rows(self) -> int:
        """Rows with a value (count less nulls)."""
        return self.count - self.nulls


@dataclass(frozen=True)
class Reference:
    """A version's reference profile: its columns by capture name, and what it lacks.

    ``columns`` keys are capture names without the ``input.`` prefix (``tumours.radius``,
    ``output.score``). ``skipped`` maps a column (or ``outputs``) to why a test is missing.
    """

    format: int
    rows: int
    columns: dict[str, ColumnReference]
    skipped: dict[str, str]

    @classmethod
    def from_profile(cls, profile: dict[str, Any]) -> Reference:
        """Read a profile.json document (format 1 or 2)."""
        version = int(profile.get("format", 1))
        columns: dict[str, ColumnReference] = {}
        skipped: dict[str, str] = {}
        for table, profiles in (profile.get("tables") or {}).items():
            for name, column in profiles.items():
                read = _column(f"{table}.{name}", column)
                if read is None:
                    skipped[f"{table}.{name}"] = "no drift test fits this column's type"
                else:
                    columns[read.column] = read
                    if read.kind == "numeric" and read.percentiles is None:
                        skipped[read.column] = "ks: the profile (format 1) has no percentiles"
        outputs = profile.get("outputs")
        if outputs is None:
            skipped["outputs"] = (
                "prediction drift: the profile (format 1) has no outputs; export the bundle "
                "again with reference data"
            )
        else:
            for name, column in outputs.items():
                read = _column(f"output.{name}", column)
                if read is not None:
                    columns[read.column] = read
        return cls(version, int(profile.get("rows", 0)), columns, skipped)

    @classmethod
    def from_bundle(cls, path: str | os.PathLike[str]) -> Reference:
        """The profile of a bundle file, after checking every file against its manifest.

        Raises ArtifactError when the bundle has no reference profile (it was exported
        without reference data), TamperedArtifact when a file does not match.
        """
        artifact = Artifact(path)
        artifact.verify()
        data = artifact.files.get(PROFILE)
        if data is None:
            raise ArtifactError(
                f"bundle {artifact.package} has no {PROFILE}: it was exported without "
                "reference data, so there is nothing to compare with"
            )
        return cls.from_profile(json.loads(data))


def _column(name: str, profile: dict[str, Any]) -> ColumnReference | None:
    count, nulls = int(profile.get("count", 0)), int(profile.get("nulls", 0))
    if "categories" in profile:
        categories = {str(k): int(v) for k, v in profile["categories"].items()}
        other = profile.get("other")
        if other is None:  # format 1: what the top categories leave of the non-null rows
            other = max(count - nulls - sum(categories.values()), 0)
        return ColumnReference(
            name, "categorical", count, nulls, categories=categories, other=int(other)
        )
    histogram = profile.get("histogram")
    if histogram is None:
        return None
    edges = tuple(float(e) for e in histogram["edges"])
    hist_counts = tuple(int(c) for c in histogram["counts"])
    bins = profile.get("bins")
    percentiles = profile.get("percentiles")
    if bins is not None:
        cuts = tuple(float(c) for c in bins["cuts"])
        counts = tuple(int(c) for c in bins["counts"])
        right_closed = True
    else:  # format 1: PSI on the histogram's interior edges
        cuts, counts, right_closed = edges[1:-1], hist_counts, False
    return ColumnReference(
        name,
        "numeric",
        count,
        nulls,
        cuts=cuts,
        counts=counts,
        right_closed=right_closed,
        percentiles=tuple(float(p) for p in percentiles) if percentiles else None,
        histogram=(edges, hist_counts),
    )
