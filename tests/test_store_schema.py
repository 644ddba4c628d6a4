"""Opening the store: migrations, their match with the models, SQLite settings, URLs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.config import StoreSettings
from syncd.errors import ConfigError
from syncd.store import SchemaOutOfDateError, Store, StoreUnavailableError, upgrade_database
from syncd.store.migrate import HEAD, head_revision
from tests import pg

db_url = pg.db_url


def test_migrations_create_exactly_the_models(db_url: str) -> None:
    assert head_revision() == HEAD  # a new migration moves HEAD with it
    with Store.open(db_url) as store:
        assert store.schema_revision() == head_revision()
        assert store.schema_diff() == []


def test_schema_check_notices_drift(db_url: str) -> None:
    with Store.open(db_url) as store:
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_change_status"))
        diff = store.schema_diff()
    assert any("ix_change_status" in str(item) for item in diff)


def test_unmigrated_schema_is_refused_until_upgraded(db_url: str) -> None:
    with Store.open(db_url, migrate=False) as store:
        assert store.schema_revision() is None
        with pytest.raises(SchemaOutOfDateError, match="syncd db upgrade"):
            store.ensure_current()
        assert store.upgrade() == head_revision()
        store.ensure_current()
        assert store.runs() == []

    assert upgrade_database(db_url) == head_revision()  # a second upgrade is a no-op


def test_sqlite_runs_in_wal_mode_with_safe_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'dir' / 'syncd.db'}"
    with Store.open(url) as store, store.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "busy_timeout": 30_000,
    }
    assert (tmp_path / "deep" / "dir" / "syncd.db").exists()


def test_concurrent_first_opens_both_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def open_it() -> None:
        barrier.wait()
        try:
            Store.open(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with Store.open(url, migrate=False) as store:
        assert store.schema_diff() == []


def test_from_settings_uses_the_store_section(tmp_path: Path) -> None:
    settings = StoreSettings(url=f"sqlite:///{tmp_path / 'var' / 'syncd.db'}")
    with Store.from_settings(settings) as store:
        assert store.dialect == "sqlite"
        assert store.url.endswith("var/syncd.db")


@pytest.mark.postgres
def test_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    server = pg.require_server()
    name = server.create_database()
    password = "pw-never-shown-5e1d"  # trust auth accepts any password
    url = server.url(name, password=password).replace("postgresql+psycopg://", "postgresql://")
    try:
        with caplog.at_level(logging.DEBUG), Store.open(url, echo=True) as store:
            assert store.dialect == "postgresql"  # plain postgresql:// means psycopg 3
            store.runs()
            assert password not in repr(store)
            assert password not in store.url
        assert password not in caplog.text

        unreachable = f"postgresql://syncd:{password}@127.0.0.1:1/{name}"
        with pytest.raises(StoreUnavailableError) as failure:
            Store.open(unreachable)
        assert password not in str(failure.value)
        assert password not in repr(failure.value)
    finally:
        server.drop_database(name)


def test_unsupported_url_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError, match="unsupported store URL") as failure:
        Store.open("mysql://root:hunter2-secret@db/syncd")
    assert "hunter2-secret" not in str(failure.value)
    assert failure.value.problems[0].location == "store.url"


def test_missing_postgres_skips_unless_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> pg.PostgresServer:
        raise pg.PostgresUnavailableError("no initdb found")

    monkeypatch.setattr(pg, "start_server", unavailable)
    monkeypatch.delenv(pg.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb found"):
        pg.require_server()

    monkeypatch.setenv(pg.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        pg.require_server()
