"""Trusted signing keys, and the signer recorded with each component version.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trusted_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("key_id", sa.String(16), nullable=False, unique=True),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(255)),
    )
    # Versions registered before this revision have no recorded signer: the policy
    # check then looks at their stored bundle against the keys trusted at that time.
    with op.batch_alter_table("component_versions") as batch:
        batch.add_column(sa.Column("signer_key_id", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("component_versions") as batch:
        batch.drop_column("signer_key_id")
    op.drop_table("trusted_keys")
