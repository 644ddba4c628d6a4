"""API tokens (kept as keyed hashes, with their role), the metric samples that
processes add up in the store for ``/metrics``, the connector a run read, and an index
on ``change (status, operation)`` that ``/metrics`` counts changes with.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``api_token`` and ``metric_sample``; add ``sync_run.connector`` and the
    index ``/metrics`` counts changes with."""
    with op.batch_alter_table("sync_run") as batch:
        batch.add_column(sa.Column("connector", sa.String(), nullable=True))
    op.create_index("ix_change_status_operation", "change", ["status", "operation"])
    op.create_table(
        "api_token",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("last_used_at", STAMP, nullable=True),
        sa.Column("revoked_at", STAMP, nullable=True),
    )
    op.create_index("ix_api_token_name", "api_token", ["name"], unique=True)
    op.create_index("ix_api_token_hash", "api_token", ["token_hash"], unique=True)
    op.create_table(
        "metric_sample",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("labels", sa.String(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("metric_sample")
    op.drop_index("ix_api_token_hash", table_name="api_token")
    op.drop_index("ix_api_token_name", table_name="api_token")
    op.drop_table("api_token")
    op.drop_index("ix_change_status_operation", table_name="change")
    with op.batch_alter_table("sync_run") as batch:
        batch.drop_column("connector")
