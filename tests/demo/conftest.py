"""Demo fixtures: the deploy step's image build uses the deploy tests' container settings."""

from tests.deploy.conftest import containers  # noqa: F401  (a fixture)
