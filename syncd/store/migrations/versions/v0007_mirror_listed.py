"""An index over what a refresh compares: the present serials, their hash and birth.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRESENT = sa.text("present")


def upgrade() -> None:
    """Add ``ix_mirror_listed`` (a refresh reads it whole, instead of the wide rows)."""
    op.create_index(
        "ix_mirror_listed",
        "mirror",
        ["serial_number", "values_hash", "device_created_at"],
        sqlite_where=_PRESENT,
        postgresql_where=_PRESENT,
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_mirror_listed", table_name="mirror")
