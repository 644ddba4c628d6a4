"""The daemon's tables: dispatch leases on changes, named lease locks, trigger requests;
and each mirrored device's ``created_at``, which tells a device made again by hand.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add ``change.lease_until``, ``lease_lock`` and ``trigger_request``."""
    with op.batch_alter_table("change") as batch:
        batch.add_column(sa.Column("lease_until", STAMP, nullable=True))
    op.create_index("ix_change_run_status", "change", ["run_id", "status"])
    with op.batch_alter_table("mirror") as batch:
        batch.add_column(sa.Column("device_created_at", STAMP, nullable=True))
    op.create_table(
        "lease_lock",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("expires_at", STAMP, nullable=False),
    )
    op.create_table(
        "trigger_request",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("serials", sa.JSON(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("requested_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_trigger_request_state", "trigger_request", ["state", "connector", "id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_trigger_request_state", table_name="trigger_request")
    op.drop_table("trigger_request")
    op.drop_table("lease_lock")
    op.drop_index("ix_change_run_status", table_name="change")
    with op.batch_alter_table("mirror") as batch:
        batch.drop_column("device_created_at")
    with op.batch_alter_table("change") as batch:
        batch.drop_column("lease_until")
