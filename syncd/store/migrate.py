"""Schema migrations (Alembic), run programmatically from inside the package.

``upgrade`` brings a database to the newest revision under a lock, so two processes
opening a fresh store at once do not both create it; ``schema_diff`` compares the
live schema with the table classes (what ``alembic check`` does), for tests and for
``syncd db check``.

Alembic is imported only when there is something to migrate or compare: a store
already at ``HEAD`` (every open but the first) is checked with one query, which keeps
Alembic, Mako and Pygments out of every command's start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from syncd.errors import SchemaOutOfDateError
from syncd.store.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: The newest revision this syncd ships: a new migration moves it
#: (``tests/test_store_schema.py`` checks it is Alembic's head).
HEAD = "0007"

#: Alembic's bookkeeping table (one row: the revision the database is at).
VERSION_TABLE = "alembic_version"
_READ_VERSION = "SELECT version_num FROM alembic_version"


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision of the migration scripts (Alembic's head)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships one
        raise RuntimeError("no migrations found")
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    with db.read() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        found = conn.exec_driver_sql(_READ_VERSION).scalars().all()
    if len(found) > 1:  # pragma: no cover - syncd's migrations have one line of history
        raise SchemaOutOfDateError(f"the store's schema has several heads: {sorted(found)}")
    return found[0] if found else None


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` (default: newest); returns where it ends.

    Runs in one write transaction holding the store lock: concurrent upgrades queue,
    and the later ones find nothing to do. A store already at ``HEAD`` costs one query.
    """
    if revision == "head" and current_revision(db) == HEAD:
        return HEAD
    from alembic import command

    config = _config()
    with db.write(lock="exclusive") as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(db)


def ensure_current(db: Database) -> None:
    """Raise ``SchemaOutOfDateError`` unless the database is at the newest revision."""
    current, head = current_revision(db), HEAD
    if current != head:
        raise SchemaOutOfDateError(
            f"the store's schema is at revision {current or 'none'}, this syncd needs {head}: "
            "run `syncd db upgrade`"
        )


def schema_diff(db: Database) -> list[Any]:
    """Differences between the live schema and the table classes (empty when in step)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from syncd.store.tables import metadata

    with db.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
