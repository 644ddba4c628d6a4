"""A snapshot skips staging the rows the store holds as they are (``syncd/store/known.py``):
pinned to the meaning of a batch, which a plain model states here.

Random sequences of snapshots and deltas over a few serials (repeated serials, serials
that differ only by case, delete records, rejects that name a serial, records given one
by one and in blocks, in several chunks) are stored, and after every batch the
connector's stored rows, the batch's counts and the ``desired`` rows must be what the
model says. The model knows nothing of skipping: a snapshot's rows become exactly what
it lists, except the serials only its rejects name; a delta replaces the rows of the
serials it lists.

Runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.records import Action, DeviceRecord, RecordBlock, Reject
from syncd.store import Store, combined_hash, known, staging
from syncd.store.rows import BatchMode
from syncd.store.staging import ConcurrentBatchError, record_row
from syncd.store.tables import DESIRED, SOURCE_RECORD
from tests import pg
from tests.profiles import examples

db_url = pg.db_url

#: "D\x1fE" holds the separator the stored serials are read with: its examples read them
#: one by one instead.
SERIALS = ("A", "B", "b", "C", "D\x1fE")

Key = tuple[str, int]
Row = tuple[str, bool, str]  # content hash, wanted, action


@dataclass(frozen=True)
class Batch:
    mode: BatchMode
    rows: tuple[tuple[str, str, Action], ...]  # serial, name, action
    rejected: tuple[str | None, ...]
    block: int  # records per block; 0: one by one

    def records(self, source: str) -> list[DeviceRecord]:
        return [
            record(serial, name, action, line, source)
            for line, (serial, name, action) in enumerate(self.rows, start=2)
        ]


def record(serial: str, name: str, action: Action, line: int, source: str) -> DeviceRecord:
    return DeviceRecord(
        source=source, serial_number=serial, origin=f"f.csv:{line}", name=name, action=action
    )


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    mode: BatchMode = draw(st.sampled_from(["snapshot", "snapshot", "delta"]))
    actions: list[Action] = ["upsert", "delete"] if mode == "delta" else ["upsert"]
    rows = st.tuples(
        st.sampled_from(SERIALS), st.sampled_from(["x", "y"]), st.sampled_from(actions)
    )
    return Batch(
        mode,
        tuple(draw(st.lists(rows, max_size=6))),
        tuple(draw(st.lists(st.sampled_from((*SERIALS, None)), max_size=2))),
        draw(st.integers(0, 3)),
    )


def items(batch: Batch, source: str) -> Iterator[DeviceRecord | Reject | RecordBlock]:
    records = batch.records(source)
    for serial in batch.rejected:
        yield Reject(source, "f.csv:99", "bad cell", serial)
    if not batch.block:
        yield from records
        return
    for start in range(0, len(records), batch.block):
        part = records[start : start + batch.block]
        yield RecordBlock(
            source=source,
            serials=[r.serial_number for r in part],
            origins=[r.origin for r in part],
            payloads=[r.payload() for r in part],
            wanted=[r.wanted for r in part],
            actions=[r.action for r in part],
        )


def model(before: dict[Key, Row], batch: Batch, source: str) -> dict[Key, Row]:
    """What the connector's rows must be after ``batch``."""
    listed: dict[str, list[Row]] = {}
    for r in batch.records(source):
        _, _, digest, _, wanted, action = record_row(r)
        listed.setdefault(r.serial_number, []).append((digest, wanted, action))
    if batch.mode == "snapshot":
        named = {s for s in batch.rejected if s is not None}
        kept = {k: v for k, v in before.items() if k[0] in named and k[0] not in listed}
    else:
        kept = {k: v for k, v in before.items() if k[0] not in listed}
    after = dict(kept)
    for serial, rows in listed.items():
        after.update({(serial, seq): row for seq, row in enumerate(rows)})
    return after


def stored(store: Store, source: str) -> dict[Key, Row]:
    r = SOURCE_RECORD.c
    query = sa.select(r.serial_number, r.seq, r.content_hash, r.wanted, r.action).where(
        r.connector == source
    )
    with store.engine.connect() as conn:
        return {(s, q): (h, bool(w), a) for s, q, h, w, a in conn.execute(query)}


def check_desired(store: Store) -> None:
    """Every serial's ``desired`` row combines exactly its stored rows."""
    r = SOURCE_RECORD.c
    with store.engine.connect() as conn:
        keys: dict[str, list[str]] = {}
        for serial, connector, seq, digest in conn.execute(
            sa.select(r.serial_number, r.connector, r.seq, r.content_hash)
        ):
            keys.setdefault(serial, []).append(f"{connector}:{seq}:{digest}")
        desired = {
            s: (h, n)
            for s, h, n in conn.execute(
                sa.select(DESIRED.c.serial_number, DESIRED.c.sources_hash, DESIRED.c.record_count)
            )
        }
    for serial, parts in keys.items():
        assert desired[serial] == (combined_hash(parts), len(parts)), serial


def test_stored_rows_follow_the_model(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "CHUNK", 2)  # records one by one come in several chunks
    sources = itertools.count()
    with Store.open(db_url) as store:
        # PostgreSQL's round trips make an example some 5x slower: fewer of them there.
        @settings(max_examples=examples(40 if db_url.startswith("sqlite") else 15, 400))
        @given(sequence=st.lists(batches(), min_size=1, max_size=5))
        def check(sequence: list[Batch]) -> None:
            source = f"src{next(sources)}"  # each example starts from no rows
            expected: dict[Key, Row] = {}
            for batch in sequence:
                before = expected
                expected = model(before, batch, source)
                with store.stage(source, mode=batch.mode, origin="f.csv") as staged:
                    staged.add(items(batch, source))
                    stats = staged.commit(accepted=True)

                assert stored(store, source) == expected
                new = expected.keys() - before.keys()
                changed = {k for k in expected.keys() & before.keys() if expected[k] != before[k]}
                assert (stats.inserted, stats.updated, stats.removed) == (
                    len(new),
                    len(changed),
                    len(before.keys() - expected.keys()),
                )
                assert stats.unchanged == len(batch.rows) - len(new) - len(changed)
            check_desired(store)

        check()


def test_a_snapshot_stored_beside_another_is_refused_and_stores_nothing(db_url: str) -> None:
    with Store.open(db_url) as store:
        store.store_batch("csv", "snapshot", "a.csv", [record("A", "x", "upsert", 2, "csv")])
        with store.stage("csv", mode="snapshot", origin="b.csv") as staged:
            staged.add([record("A", "x", "upsert", 2, "csv"), record("B", "x", "upsert", 3, "csv")])
            # Another run of the same source stores its file meanwhile.
            store.store_batch("csv", "snapshot", "c.csv", [record("C", "y", "upsert", 2, "csv")])
            with pytest.raises(ConcurrentBatchError, match="read it again"):
                staged.commit(accepted=True)

        assert set(stored(store, "csv")) == {("C", 0)}
        assert [b.origin for b in store.batches("csv")] == ["c.csv", "a.csv"]


@pytest.mark.parametrize("stored_hash", ["legacy", "z" * 32])
@pytest.mark.parametrize(
    ("odd_serial", "counts"),
    [("B", (0, 1, 1, 1)), ("C", (0, 0, 2, 1))],
    ids=["listed-again", "gone"],
)
def test_a_stored_hash_of_another_form_is_never_matched_but_compared(
    db_url: str, stored_hash: str, odd_serial: str, counts: tuple[int, int, int, int]
) -> None:
    """A hash syncd did not write (too short, or 32 characters but not hex) is read apart
    or one by one: its row is staged and compared in SQL, the others are still skipped;
    and when the snapshot no longer lists its serial, the row goes like any other."""
    rows = [record(s, "x", "upsert", line, "csv") for line, s in enumerate("ABC", start=2)]
    with Store.open(db_url) as store:
        store.store_batch("csv", "snapshot", "a.csv", rows)
        with store.engine.begin() as conn:
            conn.execute(
                SOURCE_RECORD.update()
                .where(SOURCE_RECORD.c.serial_number == odd_serial)
                .values(content_hash=stored_hash)
            )

        stats = store.store_batch("csv", "snapshot", "b.csv", rows[:2])

        assert (stats.inserted, stats.updated, stats.unchanged, stats.removed) == counts
        assert stored(store, "csv") == {
            (r.serial_number, 0): (record_row(r)[2], True, "upsert") for r in rows[:2]
        }


def test_hashes_and_serials_read_out_of_step_are_read_again_one_by_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The hashes and the serials come as two aggregates of one scan; were a database
    ever to feed them in different orders, an absence would name the wrong serial (and
    delete the wrong device's rows). Read here deliberately out of step: the check
    finds it, and the rows are read one by one, so the right row goes."""
    rows = [record(f"S{i:02d}", "x", "upsert", i + 2, "csv") for i in range(40)]
    reversed_serials = (
        "SELECT (SELECT group_concat(content_hash, '') FROM (SELECT content_hash "
        "FROM source_record WHERE connector = :connector AND seq = 0 ORDER BY serial_number)), "
        "(SELECT group_concat(serial_number, char(31)) FROM (SELECT serial_number "
        "FROM source_record WHERE connector = :connector AND seq = 0 "
        "ORDER BY serial_number DESC)), "
        "(SELECT count(*) FROM source_record WHERE connector = :connector AND seq = 0), "
        "(SELECT count(*) FROM source_record WHERE connector = :connector AND seq = 0)"
    )
    monkeypatch.setitem(known._HASHES, "sqlite", reversed_serials)
    with Store.open(f"sqlite:///{tmp_path / 'syncd.db'}") as store:
        store.store_batch("csv", "snapshot", "a.csv", rows)

        stats = store.store_batch("csv", "snapshot", "b.csv", rows[1:])  # S00 is gone

        assert (stats.removed, stats.unchanged) == (1, 39)
        assert set(stored(store, "csv")) == {(r.serial_number, 0) for r in rows[1:]}
