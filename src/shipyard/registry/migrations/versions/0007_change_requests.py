"""Change requests: promotions and rollbacks waiting for approval, and the approvals.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "environment_id",
            sa.Integer,
            sa.ForeignKey("environments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source_environment", sa.String(63)),
        sa.Column("source_revision", sa.Integer),
        sa.Column("to_revision", sa.Integer),
        sa.Column("allow_empty", sa.Boolean, nullable=False),
        sa.Column("base_revision", sa.Integer, nullable=False),
        sa.Column("approvals_required", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("result_revision", sa.Integer),
    )
    op.create_index(
        "ix_change_requests_environment_state", "change_requests", ["environment_id", "state"]
    )
    op.create_table(
        "change_approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer,
            sa.ForeignKey("change_requests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("request_id", "actor"),
    )


def downgrade() -> None:
    op.drop_table("change_approvals")
    op.drop_index("ix_change_requests_environment_state", table_name="change_requests")
    op.drop_table("change_requests")
