"""Open conflicts and the values an operator kept; where a batch's data lies now.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add ``open_conflict``, ``kept_value`` and ``source_batch.stored_at``."""
    with op.batch_alter_table("source_batch") as batch:
        batch.add_column(sa.Column("stored_at", sa.Text(), nullable=True))
    op.create_table(
        "open_conflict",
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("field", sa.String(), primary_key=True),
        sa.Column("inventory_value", sa.JSON(), nullable=True),
        sa.Column("source_value", sa.JSON(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("origins", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("change_id", BIG_ID, nullable=True),
        sa.Column("first_seen_at", STAMP, nullable=False),
        sa.Column("last_seen_at", STAMP, nullable=False),
    )
    op.create_table(
        "kept_value",
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("field", sa.String(), primary_key=True),
        sa.Column("inventory_value", sa.JSON(), nullable=True),
        sa.Column("source_value", sa.JSON(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("decided_at", STAMP, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("kept_value")
    op.drop_table("open_conflict")
    with op.batch_alter_table("source_batch") as batch:
        batch.drop_column("stored_at")
