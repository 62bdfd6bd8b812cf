"""The tier sorter (tests/_tiers.py): what reaches outside the process is found, even indirectly."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from . import conftest as suite
from ._tiers import reaches_outside
from .serving import conftest as serving

# These tests only look at code that would reach outside; the sorter would say integration.
pytestmark = pytest.mark.unit


def runs_a_process() -> None:
    subprocess.run(["true"], check=True)


def calls_a_helper_that_runs_a_process() -> None:
    runs_a_process()


def imports_spark_inside() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession


def nests_a_server() -> Any:
    def inner() -> Any:
        return suite.serving

    return inner


class Starter:
    def start(self) -> None:
        calls_a_helper_that_runs_a_process()


def stays_in_memory(values: list[int]) -> int:
    return sum(sorted(values))


def test_processes_servers_databases_and_spark_are_found_through_helpers() -> None:
    for reaching in (
        runs_a_process,
        calls_a_helper_that_runs_a_process,
        imports_spark_inside,
        Starter,
        suite.serving,  # uvicorn on a socket
        suite.Postgres,  # psycopg
        serving.serve_process,  # shipyard serve in a subprocess
    ):
        assert reaches_outside(reaching), reaching


def test_code_that_stays_in_the_process_is_unit() -> None:
    assert not reaches_outside(stays_in_memory)
    assert not reaches_outside(suite._emptied)  # SQLAlchemy alone is no server
    assert not reaches_outside(len)


def test_a_function_that_only_names_a_server_inside_a_nested_function_is_found() -> None:
    assert reaches_outside(nests_a_server)
