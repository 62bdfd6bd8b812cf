"""Drift results: one row per environment, model version, column, test and window.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "environment_id",
            sa.Integer,
            sa.ForeignKey("environments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("column_name", sa.String(255), nullable=False),
        sa.Column("test", sa.String(16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("threshold_level", sa.String(16), nullable=False),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index(
        "ix_drift_results_lookup",
        "drift_results",
        ["environment_id", "model", "version", "window_end"],
    )


def downgrade() -> None:
    op.drop_index("ix_drift_results_lookup", table_name="drift_results")
    op.drop_table("drift_results")
