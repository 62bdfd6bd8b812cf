"""Serving API keys name the scheme of their stored digest; every existing key is kept.

Keys made before this revision stored sha256 of the whole key text. That digest cannot
be turned into sha256 of the secret part (the scheme of registry tokens, and of every
key made from now on), so those rows are marked ``sha256-text`` and keep verifying by
the old rule until they are revoked; new rows say ``sha256-secret``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The scheme names of shipyard.registry._credentials, written out: a migration must keep
# meaning what it meant when it was written, whatever the code later calls them.
WHOLE_TEXT = "sha256-text"
SECRET = "sha256-secret"


def upgrade() -> None:
    op.add_column("environment_api_keys", sa.Column("hash_scheme", sa.String(16)))
    keys = sa.table("environment_api_keys", sa.column("hash_scheme", sa.String(16)))
    op.execute(keys.update().values(hash_scheme=WHOLE_TEXT))
    # SQLite cannot add NOT NULL to a column in place: batch mode recreates the table
    # (migrate() keeps foreign keys off meanwhile, so nothing cascades).
    with op.batch_alter_table("environment_api_keys") as batch:
        batch.alter_column("hash_scheme", existing_type=sa.String(16), nullable=False)


def downgrade() -> None:
    # Keys made under the new scheme cannot be expressed in the old one: a downgrade
    # revokes nothing silently, it refuses.
    connection = op.get_bind()
    keys = sa.table("environment_api_keys", sa.column("hash_scheme", sa.String(16)))
    newer = connection.execute(
        sa.select(sa.func.count()).select_from(keys).where(keys.c.hash_scheme == SECRET)
    ).scalar()
    if newer:
        raise RuntimeError(
            f"{newer} API key(s) use the sha256-secret scheme, which revision 0003 cannot "
            "verify; delete or re-create them before downgrading"
        )
    with op.batch_alter_table("environment_api_keys") as batch:
        batch.drop_column("hash_scheme")
