"""Retention of the audit log: indexes that find the oldest change rows and rejects
without reading the newer ones (``syncd.store.retention``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``ix_change_created`` and ``ix_reject_created`` (``created_at``, ``id``)."""
    op.create_index("ix_change_created", "change", ["created_at", "id"])
    op.create_index("ix_reject_created", "reject", ["created_at", "id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_reject_created", table_name="reject")
    op.drop_index("ix_change_created", table_name="change")
