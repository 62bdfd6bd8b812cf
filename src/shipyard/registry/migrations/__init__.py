"""Alembic migrations of the registry schema (run by ``shipyard.registry.migrate``)."""
