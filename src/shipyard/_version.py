"""Shipyard's version, in its own module so that no layer needs to import the root package."""

__version__ = "0.1.0"
