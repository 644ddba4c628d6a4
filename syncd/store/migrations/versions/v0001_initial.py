"""The initial schema: sources, desired state, mirror, catalogue, runs and changes.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported: a migration must keep meaning what it meant
# when it was written, whatever the application's types become.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def _where(clause: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(clause), "postgresql_where": sa.text(clause)}


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "sync_run",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("started_at", STAMP, nullable=False),
        sa.Column("finished_at", STAMP, nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("policy_fingerprint", sa.String(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("approved_by", sa.String(), nullable=True),
        sa.Column("approved_at", STAMP, nullable=True),
    )
    op.create_table(
        "source_batch",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("received_at", STAMP, nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("rejects", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
    )
    op.create_index("ix_source_batch_connector", "source_batch", ["connector", "id"])
    op.create_table(
        "source_record",
        sa.Column("connector", sa.String(), primary_key=True),
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("batch_id", BIG_ID, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
    )
    op.create_index("ix_source_record_serial", "source_record", ["serial_number"])
    op.create_table(
        "source_state",
        sa.Column("connector", sa.String(), primary_key=True),
        sa.Column("last_snapshot_count", sa.Integer(), nullable=True),
        sa.Column("previous_snapshot_count", sa.Integer(), nullable=True),
        sa.Column("watermark", sa.JSON(), nullable=True),
        sa.Column("last_full_pull_at", STAMP, nullable=True),
        sa.Column("updated_at", STAMP, nullable=False),
    )
    op.create_table(
        "reject",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("batch_id", BIG_ID, nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("serial_number", sa.String(), nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_index("ix_reject_run", "reject", ["run_id", "id"])
    op.create_table(
        "desired",
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("sources_hash", sa.String(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("synced_hash", sa.String(), nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
    )
    op.create_index(
        "ix_desired_unsynced",
        "desired",
        ["serial_number"],
        **_where("sources_hash <> synced_hash"),
    )
    op.create_table(
        "mirror",
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("values_hash", sa.String(), nullable=False),
        sa.Column("written", sa.JSON(), nullable=False),
        sa.Column("ownership", sa.String(), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("synced_values_hash", sa.String(), nullable=False),
        sa.Column("first_seen_at", STAMP, nullable=True),
        sa.Column("last_seen_at", STAMP, nullable=True),
        sa.Column("updated_at", STAMP, nullable=False),
    )
    op.create_index(
        "ix_mirror_unsynced",
        "mirror",
        ["serial_number"],
        **_where("values_hash <> synced_values_hash"),
    )
    op.create_index(
        "ix_mirror_owned",
        "mirror",
        ["serial_number"],
        **_where("ownership <> 'unmanaged' AND present"),
    )
    op.create_table(
        "catalogue_type",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("manufacturer", sa.String(), nullable=True),
        sa.Column("seen_at", STAMP, nullable=False),
    )
    op.create_table(
        "catalogue_organization",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("code", sa.String(), nullable=True),
        sa.Column("seen_at", STAMP, nullable=False),
    )
    op.create_table(
        "tombstone",
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("first_missing", STAMP, nullable=False),
        sa.Column("runs_missing", sa.Integer(), nullable=False),
    )
    op.create_table(
        "plan_candidate",
        sa.Column("run_id", BIG_ID, primary_key=True, autoincrement=False),
        sa.Column("serial_number", sa.String(), primary_key=True),
        sa.Column("desired_hash", sa.String(), nullable=True),
        sa.Column("values_hash", sa.String(), nullable=True),
    )
    op.create_table(
        "change",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", BIG_ID, sa.ForeignKey("sync_run.id"), nullable=False),
        sa.Column("serial_number", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("origins", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.Column("applied_at", STAMP, nullable=True),
    )
    op.create_index("ix_change_status", "change", ["status", "id"])
    op.create_index("ix_change_serial", "change", ["serial_number", "id"])
    op.create_index("ix_change_run", "change", ["run_id", "id"])
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    """Drop everything (the store's data goes with it)."""
    for name in (
        "store_meta",
        "change",
        "plan_candidate",
        "tombstone",
        "catalogue_organization",
        "catalogue_type",
        "mirror",
        "desired",
        "reject",
        "source_state",
        "source_record",
        "source_batch",
        "sync_run",
    ):
        op.drop_table(name)
