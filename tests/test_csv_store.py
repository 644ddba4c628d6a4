"""The CSV drop connector feeding a real store (SQLite and PostgreSQL) through ``ingest``:
what the store holds after files arrive, repeated or oddly named."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from connectors.base import Batch, Connector, build_connector
from connectors.csv_drop import JsonLedger, LedgerEntry
from syncd.engine import SerialRules
from syncd.errors import SourceError
from syncd.records import DeviceRecord
from syncd.service.ingest import IngestReport, ingest
from syncd.service.runs import StoreState
from syncd.store import Store
from tests.pg import db_url, require_server  # noqa: F401 - pytest fixture

HEADER = "serial,name,type,organization\n"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811 - the fixture imported above
    with Store.open(db_url) as opened:
        yield opened


@pytest.fixture
def other_store(db_url: str, tmp_path: Path) -> Iterator[Store]:  # noqa: F811 - the fixture
    """A second fresh store of the same kind as ``store``: another database."""
    if db_url.startswith("sqlite"):
        with Store.open(f"sqlite:///{tmp_path / 'other' / 'syncd.db'}") as opened:
            yield opened
        return
    server = require_server()
    name = server.create_database()
    try:
        with Store.open(server.url(name)) as opened:
            yield opened
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop_database(name)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def drop(inbox: Path, name: str, text: str) -> Path:
    """A complete file, old enough to be taken at once."""
    path = inbox / name
    path.write_text(text, encoding="utf-8")
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def snapshot(*serials: str) -> str:
    return HEADER + "".join(f"{s},host-{s},C9200,acme\n" for s in serials)


def delta(*rows: tuple[str, str]) -> str:
    return "serial,name,type,organization,action\n" + "".join(
        f"{s},host-{s},C9200,acme,{action}\n" for s, action in rows
    )


def procurement(store: Store, inbox: Path, **options: object) -> Connector:
    """The connector as syncd builds it: through its entry point, its state in ``store``."""
    return build_connector(
        "procurement",
        "csv_drop",
        {"inbox": str(inbox), "stable_seconds": 0, **options},
        state=StoreState(store, "procurement"),
    )


def run(store: Store, inbox: Path, **options: object) -> IngestReport:
    """One ingest of every ready file, as ``syncd run --once`` does it."""
    return ingest_from(store, procurement(store, inbox, **options))


def ingest_from(store: Store, connector: Connector) -> IngestReport:
    return ingest(
        store, [connector], serial_rules=SerialRules(), run_id=None, now=datetime.now(UTC)
    )


def held(store: Store, *serials: str) -> dict[str, list[DeviceRecord]]:
    """The procurement records the store holds for each serial."""
    return {c.serial_number: list(c.records) for c in store.load_candidates(serials)}


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def raw_names(folder: Path) -> list[bytes]:
    """The names in ``folder`` as the bytes on disk."""
    return sorted(os.fsencode(p.name) for p in folder.iterdir())


# -- a file is a duplicate only of the last file accepted ----------------------------------------


def test_an_older_snapshot_sent_again_is_the_snapshot_again(store: Store, inbox: Path) -> None:
    # Regression: A, B, A used to skip the second A as a duplicate, so the store kept B
    # and the devices only A lists were orphaned, although the newest file lists them.
    a = snapshot("S-1", "S-2", "S-3")
    drop(inbox, "monday.csv", a)
    run(store, inbox)
    drop(inbox, "tuesday.csv", snapshot("S-1", "S-2"))
    run(store, inbox)
    assert held(store, "S-3")["S-3"] == [], "Tuesday's list dropped S-3"

    drop(inbox, "wednesday.csv", a)
    report = run(store, inbox)

    assert [(b.accepted, b.records) for b in report.batches] == [(True, 3)]
    assert [r.serial_number for r in held(store, "S-3")["S-3"]] == ["S-3"], "S-3 is back"
    assert store.source_counts()["procurement"][1] == 3
    assert "wednesday.csv.duplicate.txt" not in names(inbox / "processed")


def test_the_last_snapshot_sent_again_is_set_aside(store: Store, inbox: Path) -> None:
    drop(inbox, "monday.csv", snapshot("S-1", "S-2"))
    run(store, inbox)
    drop(inbox, "monday-again.csv", snapshot("S-1", "S-2"))

    report = run(store, inbox)

    assert report.batches == [], "nothing new reached the store"
    assert "monday-again.csv.duplicate.txt" in names(inbox / "processed")
    assert len(store.batches("procurement")) == 1


def test_a_delta_delete_sent_again_after_an_upsert_deletes_again(store: Store, inbox: Path) -> None:
    # Regression: "delete X", "upsert X", then an identical "delete X" file was ignored.
    deletion = delta(("X-1", "delete"))
    drop(inbox, "1.csv", delta(("X-1", "upsert")))
    drop(inbox, "2.csv", deletion)
    run(store, inbox, mode="delta")
    drop(inbox, "3.csv", delta(("X-1", "upsert")))
    run(store, inbox, mode="delta")
    assert [r.wanted for r in held(store, "X-1")["X-1"]] == [True]

    drop(inbox, "4.csv", deletion)
    report = run(store, inbox, mode="delta")

    assert [(b.accepted, b.records) for b in report.batches] == [(True, 1)]
    ((record,),) = held(store, "X-1").values()
    assert (record.wanted, record.action) == (False, "delete")


# -- the last content accepted is kept in the store, with the batch ----------------------------


def test_the_same_file_into_a_fresh_store_is_ingested(
    store: Store, other_store: Store, inbox: Path
) -> None:
    # Regression: the ledger of ingested content lived in the inbox, so a fresh store (or
    # another database) skipped a file as "already ingested" and was left with nothing.
    content = snapshot("F-1", "F-2")
    drop(inbox, "monday.csv", content)
    run(store, inbox)
    drop(inbox, "monday-again.csv", content)

    report = run(other_store, inbox)

    assert [(b.accepted, b.records) for b in report.batches] == [(True, 2)]
    assert [r.serial_number for r in held(other_store, "F-2")["F-2"]] == ["F-2"]
    drop(inbox, "monday-third.csv", content)
    assert run(other_store, inbox).batches == [], "into the same store again: a duplicate"
    assert "monday-third.csv.duplicate.txt" in names(inbox / "processed")


def test_a_ledger_file_left_in_the_inbox_makes_no_store_skip_anything(
    store: Store, inbox: Path
) -> None:
    content = snapshot("L-1")
    # What an older syncd left in the inbox: its own ledger, naming this very content.
    JsonLedger(inbox / ".syncd-ingested.json").record(
        LedgerEntry(
            sha256=hashlib.sha256(content.encode()).hexdigest(),
            file="old.csv",
            stored_as=f"{inbox}/processed/old.csv",
            at="2020-01-01T00:00:00Z",
            records=1,
        )
    )
    drop(inbox, "new.csv", content)

    report = run(store, inbox)

    assert [(b.accepted, b.records) for b in report.batches] == [(True, 1)]
    assert [r.serial_number for r in held(store, "L-1")["L-1"]] == ["L-1"]


def test_a_file_stored_but_not_moved_is_a_duplicate_of_what_the_store_holds(
    store: Store, inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mark is saved in the transaction that merges the batch: whatever happens to
    # the file afterwards, the store knows which content it holds.
    digest = hashlib.sha256(drop(inbox, "po.csv", snapshot("M-1")).read_bytes()).hexdigest()
    connector = procurement(store, inbox)
    fetch = connector.fetch

    def fetch_and_lose_processed() -> Iterator[Batch]:
        for batch in fetch():
            (inbox / "processed").rmdir()  # opened by the fetch: the move will fail
            yield batch

    monkeypatch.setattr(connector, "fetch", fetch_and_lose_processed)
    with pytest.raises(SourceError, match="No such file or directory"):
        ingest_from(store, connector)
    assert store.watermark("procurement")["last"]["sha256"] == digest
    assert [b.accepted for b in store.batches("procurement")] == [True]

    report = run(store, inbox)

    assert report.batches == [], "the file left in processing is not stored twice"
    assert names(inbox / "processed") == ["po.csv", "po.csv.duplicate.txt"]
    assert len(store.batches("procurement")) == 1


# -- file names that are not UTF-8 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [(b"po-\xff.csv", "po-\\xff.csv"), (b"po-\x1b[31m.csv", "po-\\x1b[31m.csv")],
    ids=["not-utf8", "escape-sequence"],
)
def test_a_file_name_that_is_not_text_is_stored_and_set_down_escaped(
    store: Store, inbox: Path, raw: bytes, shown: str
) -> None:
    # Regression: the origin held a lone surrogate, the store could not encode it, and
    # setting the file aside failed too: the file stuck in processing/ for every run.
    drop(inbox, os.fsdecode(raw), snapshot("N-1", "N-2") + "N-3\n")

    report = run(store, inbox, max_error_ratio=0.5)

    (batch,) = report.batches
    assert batch.origin == f"{inbox}/{shown}"
    assert (batch.accepted, batch.records, batch.rejects) == (True, 2, 1)
    (stored,) = store.batches("procurement")
    assert stored.origin == f"{inbox}/{shown}"
    (record,) = held(store, "N-1")["N-1"]
    assert record.origin == f"{inbox}/{shown}:2"
    (reject,) = store.rejects()
    assert reject.location == f"{inbox}/{shown}:4"
    assert raw_names(inbox / "processed") == [raw, raw + b".report.txt"]
    report_text = (inbox / "processed" / os.fsdecode(raw + b".report.txt")).read_text()
    assert f"file: {shown} (dropped as {inbox}/{shown})" in report_text
    assert "line 4: " in report_text
    assert raw_names(inbox / "processing") == []
    assert run(store, inbox).batches == [], "nothing left behind to trip the next run"


def test_a_refused_file_with_a_name_that_is_not_utf8_goes_to_failed(
    store: Store, inbox: Path
) -> None:
    raw = b"po-\xe9t\xe9.csv"  # cp1252 bytes in a name
    drop(inbox, os.fsdecode(raw), "name,type\nx,y\n")

    (batch,) = run(store, inbox).batches

    assert not batch.accepted
    assert batch.origin.endswith("/po-\\xe9t\\xe9.csv")
    assert raw_names(inbox / "failed") == [raw, raw + b".error.txt"]
    error = (inbox / "failed" / os.fsdecode(raw + b".error.txt")).read_text()
    assert "file: po-\\xe9t\\xe9.csv" in error
    assert "no column for required field serial_number" in error
    assert raw_names(inbox / "processing") == []


# -- entries that are not regular files ----------------------------------------------------------


def test_a_symlink_dropped_as_a_file_is_a_refused_batch_and_nothing_is_read(
    store: Store, inbox: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(snapshot("SECRET-1"), encoding="utf-8")
    (inbox / "po.csv").symlink_to(secret)
    drop(inbox, "good.csv", snapshot("G-1"))

    report = run(store, inbox)

    reason = f"not a regular file: a symbolic link to {secret}; set aside unread"
    assert [(b.origin, b.accepted, b.reason) for b in report.refused] == [
        (f"{inbox}/po.csv", False, reason)
    ]
    assert [b.reason for b in store.batches("procurement") if not b.accepted] == [reason]
    assert held(store, "SECRET-1")["SECRET-1"] == [], "nothing was read through the link"
    assert [r.serial_number for r in held(store, "G-1")["G-1"]] == ["G-1"], "the run went on"
    assert names(inbox / "failed") == ["po.csv", "po.csv.error.txt"]
    assert (inbox / "failed" / "po.csv").is_symlink()
    assert run(store, inbox).batches == [], "set aside: not offered again"
