"""The bundle's ``pyspark_dataframe`` entry point scores a Spark DataFrame like ``python_dict``.

One local Spark session (two cores, no UI) serves the module. The demo bundle is
extracted into a folder that only the driver has on ``sys.path``: the Python workers
cannot import it, so they must get the bundle from the broadcast the entry point sends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard import Column, Pipeline, Table, feature

pytestmark = pytest.mark.slow

pyspark = pytest.importorskip("pyspark")

PACKAGE = "tumour_triage_1_0_0"


@pytest.fixture(scope="module")
def spark_main(signed_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``main`` of the demo bundle's pyspark_dataframe entry point, imported by the driver only."""
    folder = tmp_path_factory.mktemp("extracted")
    shipyard.Artifact(signed_bundle).extract(None, folder)
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(f"{PACKAGE}.pyspark_dataframe")
        yield module.main
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def tumours(spark: Any, demo_reference: dict[str, Any]) -> Any:
    """The demo's 569 reference rows as a Spark DataFrame with an ``id`` column, in 2 partitions."""
    import pandas as pd

    frame = pd.DataFrame(demo_reference["tumours"])
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return spark.createDataFrame(frame).repartition(2).cache()


def _by_id(dataframe: Any) -> Any:
    return dataframe.toPandas().sort_values("id").reset_index(drop=True)


def test_a_bundle_planted_in_the_shared_temp_folder_is_never_run(
    tumours: Any, demo_pipeline: Pipeline, tmp_path: Path
) -> None:
    # Another user of the host can write into the temp folder before the job starts; the
    # workers must run only the files the driver verified and sent.
    from shipyard.runtime._spark import score_dataframes

    artifact = shipyard.Artifact(demo_pipeline.export(tmp_path, created_by="planted-test"))
    key = hashlib.sha256(artifact.files["MANIFEST.json"]).hexdigest()
    shared = Path(tempfile.gettempdir()) / "shipyard-bundles"
    planted = shared / key
    created = not shared.exists()
    (planted / PACKAGE / "_runtime").mkdir(parents=True, exist_ok=True)
    (planted / PACKAGE / "_runtime" / "__init__.py").write_text("raise SystemExit('planted')\n")
    try:
        scored = score_dataframes(artifact.executor(), PACKAGE, {"tumours": tumours}, ["decision"])
        decisions = [row.decision for row in scored.collect()]
    finally:
        shutil.rmtree(shared if created else planted)
    assert len(decisions) == 569
    assert set(decisions) <= {"refer", "review", "routine"}


def test_workers_cannot_import_the_bundle_by_path(spark: Any, spark_main: Any) -> None:
    def find(_: Any) -> Iterator[bool]:
        import importlib.util

        yield importlib.util.find_spec("tumour_triage_1_0_0") is not None

    assert importlib.util.find_spec(PACKAGE) is not None  # the driver can
    assert spark.sparkContext.parallelize(range(2), 2).mapPartitions(find).collect() == [
        False,
        False,
    ]


def test_every_row_scores_as_the_pipeline_does(
    spark_main: Callable[..., Any],
    tumours: Any,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
) -> None:
    scored = _by_id(spark_main({"tumours": tumours}, passthrough=["id"]))
    expected = demo_pipeline.run(demo_reference)
    assert list(scored.columns) == ["id", "p_malignant", "decision"]
    assert scored["id"].tolist() == list(range(569))
    assert np.allclose(scored["p_malignant"], expected["p_malignant"]["values"], rtol=0, atol=1e-12)
    assert scored["decision"].tolist() == expected["decision"]["values"]


def test_outputs_returns_only_the_named_node(
    spark_main: Callable[..., Any],
    tumours: Any,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
) -> None:
    result = spark_main({"tumours": tumours}, outputs=["compactness_ratio"])
    assert result.columns == ["compactness_ratio"]
    with_id = _by_id(spark_main({"tumours": tumours}, ["compactness_ratio"], ["id"]))
    expected = demo_pipeline.run(demo_reference, outputs=["compactness_ratio"])
    assert np.allclose(
        with_id["compactness_ratio"], expected["compactness_ratio"]["values"], rtol=0, atol=1e-12
    )


def test_an_unknown_table_is_named(spark_main: Callable[..., Any], tumours: Any) -> None:
    with pytest.raises(ValueError, match="table 'tumors'") as raised:
        spark_main({"tumors": tumours})
    assert type(raised.value).__name__ == "UnknownTable"


def test_a_missing_column_is_named(spark_main: Callable[..., Any], tumours: Any) -> None:
    with pytest.raises(ValueError, match="column 'mean_area'") as raised:
        spark_main({"tumours": tumours.drop("mean_area")})
    assert type(raised.value).__name__ == "MissingColumn"


def test_a_missing_table_is_named(spark_main: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="table 'tumours': table is missing"):
        spark_main({})


def test_a_missing_passthrough_column_is_named(
    spark_main: Callable[..., Any], tumours: Any
) -> None:
    with pytest.raises(ValueError, match="column 'patient_id': passthrough column is missing"):
        spark_main({"tumours": tumours}, passthrough=["patient_id"])


def test_a_value_below_the_minimum_fails_the_job_naming_column_and_row(
    spark_main: Callable[..., Any], tumours: Any
) -> None:
    from pyspark.sql import functions as F

    bad = tumours.withColumn(
        "mean_radius", F.when(F.col("id") == 300, F.lit(-1.0)).otherwise(F.col("mean_radius"))
    )
    with pytest.raises(Exception) as raised:  # noqa: B017 - Spark chooses the wrapper
        spark_main({"tumours": bad}, passthrough=["id"]).collect()
    text = str(raised.value)
    assert "column 'mean_radius'" in text
    assert re.search(r"row \d+", text)
    assert "OutOfRange" in text
    assert "id=300" in text


@feature(dtype="int64")
def next_count(count: Any) -> Any:
    return count + 1


@feature(dtype="bool")
def not_flag(flag: Any) -> Any:
    return ~flag


@feature(dtype="string")
def upper_label(label: Any) -> Any:
    return np.array([None if v is None else v.upper() for v in label], dtype=object)


@feature(dtype="datetime")
def next_day(when: Any) -> Any:
    return when + np.timedelta64(1, "D")


@feature(dtype="list[float64]")
def doubled(embedding: Any) -> Any:
    return embedding * 2.0


@feature
def embedding_total(embedding: Any) -> Any:
    return embedding.sum(axis=1)


def test_every_column_type_scores_as_python_dict_does(spark: Any, tmp_path: Path) -> None:
    from shipyard.runtime._spark import score_dataframes

    table = Table(
        "events",
        [
            Column("count", "int64"),
            Column("flag", "bool"),
            Column("label", "string", nullable=True),
            Column("when", "datetime"),
            Column("embedding", "list[float64]"),
        ],
    )
    nodes = [next_count, not_flag, upper_label, next_day, doubled, embedding_total]
    pipeline = Pipeline("typed", "1.0.0", inputs=[table], nodes=nodes)
    artifact = shipyard.Artifact(pipeline.export(tmp_path))
    rows = [
        (1, True, "a", dt.datetime(2024, 1, 1, 12), [1.0, 2.0]),
        (2, False, None, dt.datetime(2024, 2, 29), [3.0, 4.5]),
    ]
    schema = "count bigint, flag boolean, label string, when timestamp, embedding array<double>"
    frame = spark.createDataFrame(rows, schema)
    scored = score_dataframes(artifact.executor(), "typed_1_0_0", {"events": frame})
    got = {name: [row[name] for row in scored.collect()] for name in scored.columns}
    expected = artifact.run(
        {"events": [dict(zip(frame.columns, row, strict=True)) for row in rows]}
    )
    assert got.pop("next_day") == [dt.datetime(2024, 1, 2, 12), dt.datetime(2024, 3, 1)]
    assert got == {name: column["values"] for name, column in expected.items() if name in got}
