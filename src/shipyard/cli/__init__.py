"""The ``shipyard`` command line: thin commands over the services."""

from ._main import app, main

__all__ = ["app", "main"]
