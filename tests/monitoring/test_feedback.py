"""Performance from late labels: joined by request or row id, figures equal to scikit-learn's."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from shipyard.errors import UsageError
from shipyard.monitoring import evaluate, parse_duration, windows

from . import _data


def write_labels(path: Path, rows: list[tuple[str, object]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "defaulted"])
        writer.writerows(rows)
    return path


def captured(folder: Path, count: int, seed: int, per_request: int) -> tuple[list[str], dict]:
    data = _data.rows(count, seed)
    ids = _data.capture(folder, data, per_request=per_request)
    return ids, data


def test_labels_with_a_share_flipped_give_scikit_learns_figures_on_the_same_rows(
    capture_dir: Path, tmp_path: Path
) -> None:
    ids, data = captured(capture_dir, 600, seed=41, per_request=1)
    p = _data.score(np.column_stack([data["income"], data["age"]]))
    truth = (np.random.default_rng(42).random(600) < p).astype(int)
    flipped = truth.copy()
    flipped[:120] = 1 - flipped[:120]  # a fifth of the labels turned over
    labels = write_labels(tmp_path / "labels.csv", list(zip(ids, flipped.tolist(), strict=True)))
    report = evaluate(list(windows(capture_dir, "loan_risk", "v1")), labels, "id", "defaulted")
    assert (report.task, report.prediction, report.matched, report.unmatched) == (
        "binary",
        "p_default",
        600,
        0,
    )
    [figures] = report.versions
    assert figures["accuracy"] == pytest.approx(skm.accuracy_score(flipped, p >= 0.5))
    assert figures["roc_auc"] == pytest.approx(skm.roc_auc_score(flipped, p))
    assert figures["log_loss"] == pytest.approx(skm.log_loss(flipped, p))
    assert figures["brier"] == pytest.approx(skm.brier_score_loss(flipped, p))
    observed, predicted = calibration_curve(flipped, p, n_bins=10, strategy="uniform")
    table = figures["calibration"]
    assert [b["observed"] for b in table] == pytest.approx(observed.tolist())
    assert [b["predicted"] for b in table] == pytest.approx(predicted.tolist())
    # Flipping labels costs accuracy: the honest labels score better.
    honest = write_labels(tmp_path / "honest.csv", list(zip(ids, truth.tolist(), strict=True)))
    better = evaluate(list(windows(capture_dir, "loan_risk", "v1")), honest, "id", "defaulted")
    assert better.versions[0]["accuracy"] > figures["accuracy"]


def test_rows_of_a_request_are_named_request_hash_row_and_unmatched_labels_are_counted(
    capture_dir: Path, tmp_path: Path
) -> None:
    ids, data = captured(capture_dir, 40, seed=43, per_request=4)
    rows = [(f"{rid}#{row}", 1) for rid in ids for row in range(4)]
    rows += [("nobody-0", 0), ("nobody-1", 1), (rows[0][0], 0)]  # two unknown ids, one twice
    labels = write_labels(tmp_path / "labels.csv", rows)
    report = evaluate(list(windows(capture_dir, "loan_risk", "v1")), labels, "id", "defaulted")
    assert report.matched == 40
    assert (report.unmatched, report.unmatched_ids) == (2, ["nobody-0", "nobody-1"])
    assert report.duplicates == 1
    assert report.labels == 43 and report.unlabelled == 0


def test_regression_figures_and_windows(capture_dir: Path, tmp_path: Path) -> None:
    hour = 3600.0
    base = 1_900_000_000.0 // hour * hour
    data = _data.rows(100, seed=44)
    first = _data.capture(capture_dir, data, per_request=1, at=base + 10)
    second = _data.capture(capture_dir, data, per_request=1, at=base + hour + 10, request_id="b")
    p = _data.score(np.column_stack([data["income"], data["age"]]))
    target = p + np.linspace(-0.1, 0.1, 100)
    rows = [(rid, t) for rid, t in zip(first + second, [*target, *target], strict=True)]
    labels = write_labels(tmp_path / "labels.csv", rows)
    report = evaluate(
        list(windows(capture_dir, "loan_risk", "v1")),
        labels,
        "id",
        "defaulted",
        task="regression",
        window=parse_duration("1h"),
    )
    [figures] = report.versions
    assert figures["mae"] == pytest.approx(skm.mean_absolute_error(target, p))
    assert figures["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(target, p)))
    assert [w["rows"] for w in report.windows] == [100, 100]


def test_a_label_file_without_the_named_column_is_a_usage_error(
    capture_dir: Path, tmp_path: Path
) -> None:
    captured(capture_dir, 10, seed=45, per_request=1)
    labels = write_labels(tmp_path / "labels.csv", [("x", 1)])
    with pytest.raises(UsageError, match="has no column 'label'"):
        evaluate(list(windows(capture_dir, "loan_risk", "v1")), labels, "id", "label")
