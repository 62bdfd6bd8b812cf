"""Batch scoring: files of any size through a bundle, locally, on Spark, or as queued jobs.

    from shipyard.batch import BatchOptions, run_local
    result = run_local("dist/credit_risk-1.2.0.tar.gz", "applications.csv", "scores.parquet",
                       BatchOptions(id_column="application_id"))
    print(result.summary())      # rows, scored, rejected, seconds, rows/s

``run_spark`` does the same on Spark through the bundle's ``pyspark_dataframe`` entry
point; ``BatchOptions`` says how either engine scores. A ``Worker`` runs the jobs that
the registry's ``submit_batch_job`` queues. See docs/batch.md.
"""

from ._deployed import fetch_deployed
from ._local import BatchResult, Progress, Stopped, run_local
from ._options import BatchOptions
from ._spark_engine import run_spark
from ._worker import Worker, run_job, wait_for

__all__ = [
    "BatchOptions",
    "BatchResult",
    "Progress",
    "Stopped",
    "Worker",
    "fetch_deployed",
    "run_job",
    "run_local",
    "run_spark",
    "wait_for",
]
