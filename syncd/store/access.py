"""Whether a store URL can be used, and what a failure to open one means.

The exit code of a command depends on it: a store that cannot work until somebody
changes something (a path under a file, a folder where the database file should be,
a file that is not SQLite, a read-only folder, a PostgreSQL database or role that
does not exist) is a configuration error, exit 2; only a database that is
unreachable *for now* (PostgreSQL down, SQLite locked past the busy timeout, a full
disk) is a temporary failure, exit 4, worth retrying.

``sqlite_problem`` looks at a SQLite path without creating anything, so ``syncd
config check`` can use it; ``probe`` also connects (read-only for SQLite);
``translate`` turns what SQLAlchemy, the drivers and the file system raise while
opening or migrating into one of the two errors, each naming the store.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL

from syncd.errors import ConfigError, Problem, RetriableError, SyncdError
from syncd.store.db import normalise_url, safe_url

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"

#: How long ``probe`` waits for PostgreSQL to answer, seconds.
PROBE_TIMEOUT = 5

#: SQLite errors that pass by themselves (anything else needs a person).
_SQLITE_TEMPORARY = ("locked", "busy", "disk is full", "disk i/o error")

#: What a PostgreSQL server says when it refuses a connection for good (the URL names a
#: database, role or password it does not know, or pg_hba.conf does not let it in), and
#: what libpq says of a URL it cannot use (``invalid port number``...).
_PG_REFUSED = (
    "invalid ",
    "does not exist",
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "not permitted to log in",
)


class StoreUnavailableError(RetriableError):
    """The database is down or unreachable (try again later)."""


def parse(url: str) -> URL:
    """``url`` parsed, or ``ConfigError`` naming it (password hidden)."""
    try:
        parsed = normalise_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise _config_error(_hide_password(url), f"is not a usable database URL: {exc}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise _config_error(
            safe_url(parsed),
            "unsupported store URL: use sqlite:///path or postgresql://...",
        )
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL (``None``: not SQLite, or in memory)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser()


def sqlite_problem(path: Path) -> str | None:
    """Why the SQLite store at ``path`` cannot be opened or created, or ``None``.

    Looks only: nothing is created. SQLite in WAL mode writes two files beside the
    database, so its folder must be writable even when the database exists.
    """
    try:
        if path.is_dir():
            return f"{path} is a folder, not a database file"
        if path.exists():
            return _existing_file_problem(path)
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as exc:
        return f"{path} cannot be checked: {exc.strerror or exc}"
    if not existing.is_dir():
        return f"{path} cannot be created: {existing} is a file, not a folder"
    if not _writable(existing):
        return f"{path} cannot be created: the folder {existing} is not writable"
    return None


def _existing_file_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user"
    if not _writable(path.parent):
        return f"the folder {path.parent} is not writable (SQLite keeps its journal there)"
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        return f"{path} is not an SQLite database"
    return None


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def probe(url: str) -> None:
    """Check that the store at ``url`` can be opened, changing nothing.

    SQLite: the path is checked and an existing file is opened read-only and its schema
    read. PostgreSQL: one connection and ``SELECT 1``. Raises ``ConfigError`` or
    ``StoreUnavailableError`` as ``translate`` does.
    """
    parsed = parse(url)
    path = sqlite_file(parsed)
    if path is not None:
        problem = sqlite_problem(path)
        if problem:
            raise _config_error(None, problem)
        if path.exists():
            with translate(parsed):
                _read_sqlite_schema(path)
        return
    if parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(parsed, connect_args={"connect_timeout": PROBE_TIMEOUT})
        try:
            with translate(parsed), engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()


def _read_sqlite_schema(path: Path) -> None:
    """Read what opening reads first (the schema, the migration revision), read-only."""
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" in tables:
            connection.execute("SELECT * FROM alembic_version").fetchall()
    except sqlite3.Error as exc:
        raise sa.exc.DatabaseError("reading the schema", None, exc) from None
    finally:
        connection.close()


@contextmanager
def translate(url: URL) -> Iterator[None]:
    """Turn a failure to open or migrate the store at ``url`` into ``ConfigError``
    (needs a person) or ``StoreUnavailableError`` (try again later), each naming the
    store and what the database or the system said. Other exceptions pass."""
    try:
        yield
    except SyncdError:
        raise
    except OSError as exc:  # creating the SQLite file's folder
        where = f" ({exc.filename})" if exc.filename else ""
        raise _config_error(safe_url(url), f"{exc.strerror or exc}{where}") from None
    except sa.exc.DBAPIError as exc:
        raise _database_error(url, exc) from None
    except sqlite3.Error as exc:
        raise _database_error(url, sa.exc.DBAPIError("", None, exc)) from None


def _database_error(url: URL, exc: sa.exc.DBAPIError) -> SyncdError:
    said = " ".join(str(exc.orig).split())[:300]
    shown = safe_url(url)
    lower = said.lower()
    if url.get_backend_name() == "sqlite":
        if any(word in lower for word in _SQLITE_TEMPORARY):
            return StoreUnavailableError(f"the state store {shown} is not usable now: {said}")
        if "not a database" in lower or "malformed" in lower:
            said = f"not an SQLite database, or a damaged one ({said})"
        return _config_error(shown, said)
    refused = any(words in lower for words in _PG_REFUSED)
    if isinstance(exc, sa.exc.OperationalError) and not refused:
        return StoreUnavailableError(f"the state store {shown} cannot be reached: {said}")
    return _config_error(shown, said)


def _config_error(shown: str | None, message: str) -> ConfigError:
    """``message`` about the store ``shown`` (``None``: the message names it already)."""
    text = message if shown is None else f"{shown}: {message}"
    return ConfigError([Problem("store.url", text)], source="store")


def _hide_password(url: str) -> str:
    """``url`` with any password hidden (it may be malformed, so no URL parsing)."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)
