"""Who runs a run and who claimed a change, so a dead process's work is recovered at once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``sync_run.owner`` and ``change.claimed_by`` (both nullable: older rows have none)."""
    with op.batch_alter_table("sync_run") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))
    with op.batch_alter_table("change") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("change") as batch:
        batch.drop_column("claimed_by")
    with op.batch_alter_table("sync_run") as batch:
        batch.drop_column("owner")
