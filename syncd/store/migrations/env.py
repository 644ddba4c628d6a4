"""Alembic environment for the store's migrations.

Run programmatically only (``syncd.store.migrate.upgrade``, behind ``syncd db
upgrade`` and ``Store.open``): the caller hands in an open connection inside the
transaction that holds the migration lock, so there is no ``alembic.ini`` and no URL
(or password) in any file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from syncd.store.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the syncd store's migrations run through `syncd db upgrade`, not the alembic CLI"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
