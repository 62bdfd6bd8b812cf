"""The drift statistics: scipy.stats where it has them, PSI on the profile's own bins here.

Each function compares current values with what a reference profile kept of the training
data (bin counts, percentiles, category counts), never with the training rows themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats
from scipy.spatial import distance

# A bin with no rows on one side would make PSI infinite; its share is floored here (a
# common choice: one row in ten thousand).
PSI_FLOOR = 1e-4
OTHER = "(other)"  # the categories a profile did not keep, and current ones it never saw


@dataclass(frozen=True)
class TestResult:
    """One test's statistic (``score``), its p-value where it has one, and what it saw."""

    test: str
    score: float
    p_value: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def bin_counts(values: np.ndarray, cuts: Sequence[float], right_closed: bool = True) -> np.ndarray:
    """How many ``values`` fall into each bin between ``cuts`` (len(cuts) + 1 bins).

    ``right_closed``: bins are (a, b] (the profile's decile bins); otherwise [a, b) (numpy's
    histogram, which format 1 profiles kept). Values beyond the ends go to the end bins.
    """
    side: Literal["left", "right"] = "left" if right_closed else "right"
    index = np.searchsorted(np.asarray(cuts, dtype=np.float64), np.asarray(values), side=side)
    return np.bincount(index, minlength=len(cuts) + 1)


def psi(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> TestResult:
    """Population stability index of two count vectors over the same bins.

    ``sum((c - r) * ln(c / r))`` over the bins' shares, each share floored at PSI_FLOOR.
    """
    ref = _shares(reference)
    cur = _shares(current)
    terms = (cur - ref) * np.log(cur / ref)
    return TestResult(
        "psi",
        float(terms.sum()),
        None,
        {
            "bins": len(ref),
            "reference_share": np.round(ref, 6).tolist(),
            "current_share": np.round(cur, 6).tolist(),
        },
    )


def _shares(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    shares = array / total if total > 0 else np.full(len(array), 1.0 / max(len(array), 1))
    return np.maximum(shares, PSI_FLOOR)


def ks(values: np.ndarray, percentiles: Sequence[float], reference_rows: int) -> TestResult:
    """Kolmogorov-Smirnov distance of ``values`` from the reference's distribution.

    The reference CDF is the piecewise-linear one through its 101 percentiles; the
    p-value is the two-sample one for ``reference_rows`` and ``len(values)`` rows
    (``scipy.stats.kstwo`` at their effective size), since the reference is a sample too.
    """
    grid = np.asarray(percentiles, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, len(grid))
    # np.interp needs increasing x: repeated percentiles (a discrete column) keep their
    # highest level, so the CDF jumps there as a discrete one does.
    unique, last = np.unique(grid[::-1], return_index=True)
    heights = levels[::-1][last]

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.interp(x, unique, heights, left=0.0, right=1.0)

    found = stats.kstest(values, cdf)
    n, m = len(values), max(int(reference_rows), 1)
    effective = max(int(round(n * m / (n + m))), 1)
    p_value = float(stats.kstwo.sf(found.statistic, effective))
    return TestResult(
        "ks", float(found.statistic), p_value, {"rows": n, "reference_rows": reference_rows}
    )


def category_counts(
    reference: Mapping[str, int], other: int, current: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
    """Reference and current counts over the same categories, and the unseen ones' counts.

    The categories are the reference's kept ones, then ``(other)`` for the rest of the
    reference and for current values it never saw (those are also returned, with their
    counts, most frequent first).
    """
    names = list(reference)
    index = {name: i for i, name in enumerate(names)}
    ref = np.array([reference[n] for n in names] + [other], dtype=np.float64)
    cur = np.zeros(len(names) + 1, dtype=np.float64)
    unseen: dict[str, int] = {}
    for value in current:
        i = index.get(value)
        if i is None:
            cur[-1] += 1
            unseen[value] = unseen.get(value, 0) + 1
        else:
            cur[i] += 1
    new = {name: unseen[name] for name in sorted(unseen, key=lambda n: -unseen[n])}
    return [*names, OTHER], ref, cur, new


def category_test(names: Sequence[str], reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Chi-square test of homogeneity, or a two-proportion z-test when two values remain.

    Categories empty on both sides are dropped first (they carry no information).
    """
    keep = (reference + current) > 0
    ref, cur = reference[keep], current[keep]
    kept = [n for n, k in zip(names, keep, strict=True) if k]
    if len(kept) < 2:
        return TestResult("chi2", 0.0, 1.0, {"categories": len(kept)})
    if len(kept) == 2:
        n1, n2 = ref.sum(), cur.sum()
        p1, p2 = ref[0] / n1, cur[0] / n2
        pooled = (ref[0] + cur[0]) / (n1 + n2)
        spread = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
        z = float((p2 - p1) / spread) if spread > 0 else 0.0
        p_value = float(2.0 * stats.norm.sf(abs(z)))
        return TestResult(
            "z",
            z,
            p_value,
            {"value": kept[0], "reference_share": float(p1), "current_share": float(p2)},
        )
    found = stats.chi2_contingency(np.vstack([ref, cur]))
    return TestResult(
        "chi2",
        float(found.statistic),
        float(found.pvalue),
        {"categories": len(kept), "dof": int(found.dof)},
    )


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Jensen-Shannon distance (base 2: 0 for the same shares, 1 for disjoint ones)."""
    if reference.sum() == 0 or current.sum() == 0:
        return TestResult("js", 0.0)
    found = distance.jensenshannon(reference, current, base=2.0)
    return TestResult("js", float(found))


def two_sample(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Kolmogorov-Smirnov test of two samples (the outputs of two versions)."""
    found = stats.ks_2samp(a, b)
    return TestResult("ks", float(found.statistic), float(found.pvalue))


def proportions(a_hits: int, a_total: int, b_hits: int, b_total: int) -> TestResult:
    """Whether two shares differ: Fisher's exact test on the 2x2 table (any size)."""
    if min(a_total, b_total) == 0:
        return TestResult("fisher", float("nan"), None)
    table = [[a_hits, a_total - a_hits], [b_hits, b_total - b_hits]]
    found = stats.fisher_exact(table)
    return TestResult("fisher", float(found.statistic), float(found.pvalue))


def location(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Whether one sample tends to be larger (Mann-Whitney U, two-sided)."""
    if len(a) == 0 or len(b) == 0:
        return TestResult("mannwhitney", float("nan"), None)
    found = stats.mannwhitneyu(a, b, alternative="two-sided")
    return TestResult("mannwhitney", float(found.statistic), float(found.pvalue))
