"""Model cards: each version keeps the card its bundle carried, completed at registration.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("component_versions") as batch:
        batch.add_column(sa.Column("model_card", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("component_versions") as batch:
        batch.drop_column("model_card")
