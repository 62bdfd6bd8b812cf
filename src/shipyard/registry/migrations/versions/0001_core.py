"""Core tables: projects, environments, components, versions and revisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _who(name: str = "created_by") -> sa.Column[object]:
    return sa.Column(name, sa.String(255), nullable=False)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        _when(),
        _who(),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("promotes_to_id", sa.Integer, sa.ForeignKey("environments.id")),
        sa.Column("challenger_of_id", sa.Integer, sa.ForeignKey("environments.id")),
        _when(),
        _who(),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "components",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _when(),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "component_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "component_id",
            sa.Integer,
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(16)),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("bundle_version", sa.String(64), nullable=False),
        sa.Column("signed", sa.Boolean, nullable=False),
        sa.Column("app_config", sa.JSON, nullable=False),
        _when(),
        _who(),
        sa.Column("tagged_at", sa.DateTime(timezone=True)),
        sa.Column("tagged_by", sa.String(255)),
        sa.UniqueConstraint("component_id", "number"),
        sa.UniqueConstraint("component_id", "tag"),
        sa.UniqueConstraint("component_id", "digest"),
    )
    op.create_table(
        "default_versions",
        sa.Column(
            "component_id",
            sa.Integer,
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "component_version_id",
            sa.Integer,
            sa.ForeignKey("component_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        _who("set_by"),
    )
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "environment_id",
            sa.Integer,
            sa.ForeignKey("environments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        _when(),
        _who("actor"),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.UniqueConstraint("environment_id", "number"),
    )
    op.create_table(
        "revision_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "revision_id",
            sa.Integer,
            sa.ForeignKey("revisions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "component_id",
            sa.Integer,
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "component_version_id",
            sa.Integer,
            sa.ForeignKey("component_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("app_config", sa.JSON, nullable=False),
        sa.UniqueConstraint("revision_id", "component_id"),
    )


def downgrade() -> None:
    for table in (
        "revision_entries",
        "revisions",
        "default_versions",
        "component_versions",
        "components",
        "environments",
        "projects",
    ):
        op.drop_table(table)
