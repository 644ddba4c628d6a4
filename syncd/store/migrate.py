"""Schema migrations (Alembic), run programmatically from inside the package.

``upgrade`` brings a database to the newest revision under a lock, so two processes
opening a fresh store at once do not both create it; ``schema_diff`` compares the
live schema with the table classes (what ``alembic check`` does), for tests and for
``syncd db check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from syncd.errors import SchemaOutOfDateError
from syncd.store.db import Database
from syncd.store.tables import metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision this syncd ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships one
        raise RuntimeError("no migrations found")
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` (default: newest); returns where it ends.

    Runs in one write transaction holding the store lock: concurrent upgrades queue,
    and the later ones find nothing to do.
    """
    config = _config()
    with db.write(lock="exclusive") as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(db)


def ensure_current(db: Database) -> None:
    """Raise ``SchemaOutOfDateError`` unless the database is at the newest revision."""
    current, head = current_revision(db), head_revision()
    if current != head:
        raise SchemaOutOfDateError(
            f"the store's schema is at revision {current or 'none'}, this syncd needs {head}: "
            "run `syncd db upgrade`"
        )


def schema_diff(db: Database) -> list[Any]:
    """Differences between the live schema and the table classes (empty when in step)."""
    with db.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
