"""The CSV drop connector feeding a real store (SQLite and PostgreSQL) through ``ingest``:
what the store holds after files arrive, repeated or oddly named."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.csv_drop import CsvDropConfig, CsvDropConnector
from syncd.engine import SerialRules
from syncd.records import DeviceRecord
from syncd.service.ingest import IngestReport, ingest
from syncd.store import Store
from tests.pg import db_url  # noqa: F401 - pytest fixture

HEADER = "serial,name,type,organization\n"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811 - the fixture imported above
    with Store.open(db_url) as opened:
        yield opened


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


def run(store: Store, inbox: Path, **options: object) -> IngestReport:
    """One ingest of every ready file, as ``syncd run --once`` does it."""
    config = CsvDropConfig.model_validate({"inbox": inbox, "stable_seconds": 0, **options})
    return ingest(
        store,
        [CsvDropConnector("procurement", config)],
        serial_rules=SerialRules(),
        run_id=None,
        now=datetime.now(UTC),
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
