"""Batch scoring: files of any size through a bundle, locally, on Spark, or as queued jobs.

    from shipyard.batch import run_local
    result = run_local("dist/credit_risk-1.2.0.tar.gz", "applications.csv", "scores.parquet",
                       id_column="application_id")
    print(result.summary())      # rows, scored, rejected, seconds, rows/s

``run_spark`` does the same on Spark through the bundle's ``pyspark_dataframe`` entry
point; ``submit_job`` queues a job in the registry database that a ``Worker`` runs. See
docs/batch.md.
"""

from ._jobs import (
    Job,
    Jobs,
    Worker,
    cancel_job,
    claim_job,
    fetch_deployed,
    get_job,
    list_jobs,
    recover_jobs,
    run_job,
    submit_job,
    wait_for,
)
from ._local import BatchResult, Progress, Stopped, run_local
from ._spark_engine import run_spark

__all__ = [
    "BatchResult",
    "Job",
    "Jobs",
    "Progress",
    "Stopped",
    "Worker",
    "cancel_job",
    "claim_job",
    "fetch_deployed",
    "get_job",
    "list_jobs",
    "recover_jobs",
    "run_job",
    "run_local",
    "run_spark",
    "submit_job",
    "wait_for",
]
