"""A real, throw-away PostgreSQL server on 127.0.0.1 for the tests.

The first test that asks for PostgreSQL starts one cluster (``initdb`` into a
temporary directory, ``pg_ctl start`` on a free loopback port, trust auth, fsync
off); every test then gets a database of its own. The cluster is stopped and deleted
when the test process exits.

When no PostgreSQL binaries are installed the tests that need them are skipped with
the reason, unless ``SYNCD_REQUIRE_POSTGRES=1`` (set by CI), which makes that a
failure. As root the server runs as the ``postgres`` user (PostgreSQL refuses root).

Wiring: import the fixtures into a test module or ``conftest.py``::

    from tests.pg import db_url, postgres_url  # noqa: F401  (pytest fixtures)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from syncd.topology import LocalStackError
from syncd.topology.postgres import find_programs
from syncd.topology.procs import free_port

REQUIRE_ENV = "SYNCD_REQUIRE_POSTGRES"
USER = "syncd"


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL cannot be started here (the message says why)."""


def _bindir() -> Path:
    try:
        return find_programs()
    except LocalStackError as exc:
        raise PostgresUnavailableError(str(exc)) from None


@dataclass
class PostgresServer:
    """A running cluster: where it listens and how to stop it."""

    bindir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A ``postgresql+psycopg://`` URL (trust auth: any password is accepted)."""
        auth = f"{USER}:{password}" if password else USER
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database}"

    def create_database(self, *, icu_locale: str | None = None) -> str:
        """A new empty database; returns its name. ``icu_locale`` (e.g. ``"en-US"``):
        its default collation is that ICU locale's, as many production databases'
        are (``a < B < é < Z``), not the test cluster's byte order."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        options = ""
        if icu_locale is not None:
            options = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{options}')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> None:
        initdb = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        )
        if initdb.returncode != 0:
            raise PostgresUnavailableError(f"initdb failed: {initdb.stderr.strip()}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        started = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailableError(
                f"pg_ctl start failed: {started.stderr.strip()} {started.stdout.strip()}\n{tail}"
            )

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


_lock = threading.Lock()
_server: PostgresServer | None = None
_failure: str | None = None


def start_server() -> PostgresServer:
    """The process's PostgreSQL server, started on first use."""
    global _server, _failure  # noqa: PLW0603 - one cluster per test process
    with _lock:
        if _server is not None:
            return _server
        if _failure is not None:
            raise PostgresUnavailableError(_failure)
        try:
            bindir = _bindir()
            run_as = None
            if os.geteuid() == 0:
                try:
                    pwd.getpwnam("postgres")
                except KeyError:
                    raise PostgresUnavailableError(
                        "running as root and there is no postgres user to run the server"
                    ) from None
                run_as = "postgres"
            root = Path(tempfile.mkdtemp(prefix="syncd-pg-"))
            if run_as:
                shutil.chown(root, user=run_as, group=run_as)
            server = PostgresServer(bindir=bindir, root=root, port=free_port(), run_as=run_as)
            try:
                server.start()
            except PostgresUnavailableError:
                shutil.rmtree(root, ignore_errors=True)
                raise
        except PostgresUnavailableError as exc:
            _failure = str(exc)
            raise
        atexit.register(server.stop)
        _server = server
        return server


def require_server() -> PostgresServer:
    """The server, or skip the test (fail instead when ``SYNCD_REQUIRE_POSTGRES=1``)."""
    try:
        return start_server()
    except PostgresUnavailableError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server (dropped afterwards)."""
    server = require_server()
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL, once for SQLite (in ``tmp_path``) and once for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'syncd.db'}"
        return
    server = require_server()
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop_database(name)
