"""Storing connector batches: snapshot and delta semantics, staging, rejects, counts.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from syncd.engine import Plan
from syncd.records import DeviceRecord, RecordBlock, Reject
from syncd.store import Store, combined_hash
from syncd.store.rows import BatchMode
from syncd.store.staging import CHUNK, StagedBatch
from syncd.store.tables import DESIRED, SOURCE_RECORD
from tests import pg

db_url = pg.db_url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def rec(serial: str, source: str = "csv", **values: object) -> DeviceRecord:
    values.setdefault("name", f"name-{serial}")
    return DeviceRecord(source=source, serial_number=serial, origin=f"{source}:{serial}", **values)  # type: ignore[arg-type]


def records_of(store: Store, serial: str) -> list[DeviceRecord]:
    (candidate,) = store.load_candidates([serial])
    return list(candidate.records)


def plan_everything(store: Store, fingerprint: str = "fp") -> list[str]:
    """Run one planning cycle that does nothing, so every serial counts as planned."""
    run = store.begin_run("test", fingerprint)
    serials = store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[]))
    return serials


def desired_hashes(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(DESIRED.c.serial_number, DESIRED.c.sources_hash))
        return {str(serial): str(digest) for serial, digest in rows}


def test_snapshot_replaces_the_connectors_rows_and_only_them(store: Store) -> None:
    store.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("B"), rec("C")])
    store.store_batch("netbox", "snapshot", "nb", [rec("A", "netbox", location="dc1")])

    stats = store.store_batch(
        "csv", "snapshot", "b.csv", [rec("B", name="renamed"), rec("C"), rec("D")]
    )

    assert (stats.inserted, stats.updated, stats.unchanged, stats.removed) == (1, 1, 1, 1)
    assert [r.source for r in records_of(store, "A")] == ["netbox"]  # csv's A is gone
    assert records_of(store, "B")[0].name == "renamed"
    assert records_of(store, "D")[0].origin == "csv:D"
    assert store.source_counts()["csv"] == (None, 3)


def test_records_come_back_exactly_as_stored(store: Store) -> None:
    original = DeviceRecord(
        source="csv",
        serial_number="Ab-1",
        origin="inbox/po.csv:7",
        name="edge-1",
        device_type=12,
        organization="Acme Corp",
        status=False,
        ip_address="10.0.0.1",
        mac_address="",
        description="rack 4",
        extra=(("po", "17"),),
    )
    store.store_batch("csv", "snapshot", "po.csv", [original])

    assert records_of(store, "Ab-1") == [original]
    assert records_of(store, "ab-1") == []  # serials are compared exactly


def test_identical_snapshot_touches_nothing(store: Store) -> None:
    batch = [rec(f"S{i}") for i in range(20)]
    store.store_batch("csv", "snapshot", "a.csv", batch)
    before = desired_hashes(store)
    plan_everything(store)

    stats = store.store_batch("csv", "snapshot", "a.csv", batch)

    assert (stats.unchanged, stats.touched, stats.inserted, stats.updated) == (20, 0, 0, 0)
    assert desired_hashes(store) == before
    assert plan_everything(store) == []  # nothing to plan


def test_desired_hash_changes_only_for_touched_serials(store: Store) -> None:
    store.store_batch("csv", "snapshot", "a.csv", [rec(f"S{i}") for i in range(10)])
    store.store_batch("netbox", "snapshot", "nb", [rec("S1", "netbox"), rec("S2", "netbox")])
    before = desired_hashes(store)

    changed = [rec(f"S{i}") for i in range(10) if i != 2] + [rec("S2", name="new")]
    stats = store.store_batch("csv", "snapshot", "a.csv", changed)

    after = desired_hashes(store)
    assert stats.touched == 1
    assert {s for s in after if after[s] != before[s]} == {"S2"}
    # The combined hash is the same function of the rows on both backends.
    keys = [f"{r.source}:0:{r.content_hash()}" for r in records_of(store, "S1")]
    assert after["S1"] == combined_hash(keys)


@pytest.mark.parametrize("mode", ["snapshot", "delta"])
def test_a_row_that_only_moved_is_not_rewritten(store: Store, mode: BatchMode) -> None:
    first = store.store_batch("csv", "snapshot", "a.csv", [rec("A")])
    plan_everything(store)
    moved = DeviceRecord(source="csv", serial_number="A", origin="b.csv:9", name="name-A")

    stats = store.store_batch("csv", mode, "b.csv", [moved])

    assert (stats.updated, stats.unchanged, stats.touched) == (0, 1, 0)
    # It keeps the origin and batch its content was read from: that place still holds it.
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(SOURCE_RECORD.c.origin, SOURCE_RECORD.c.batch_id).where(
                SOURCE_RECORD.c.serial_number == "A"
            )
        ).one()
    assert tuple(row) == ("csv:A", first.batch_id)
    assert plan_everything(store) == []


def test_delta_upserts_and_keeps_deletes_as_unwanted(store: Store) -> None:
    store.store_batch("nb", "snapshot", "nb", [rec(s, "nb") for s in ("A", "B", "D")])

    stats = store.store_batch(
        "nb",
        "delta",
        "nb since t",
        [
            rec("B", "nb", name="renamed"),
            rec("C", "nb"),
            DeviceRecord(source="nb", serial_number="A", action="delete"),
        ],
    )

    assert (stats.inserted, stats.updated, stats.removed) == (1, 2, 0)
    (a,) = records_of(store, "A")
    assert (a.wanted, a.action) == (False, "delete")
    assert records_of(store, "B")[0].name == "renamed"
    assert len(records_of(store, "C")) == 1
    assert len(records_of(store, "D")) == 1  # a delta does not remove unlisted serials
    assert store.source_counts()["nb"] == (None, 3)  # deltas do not change snapshot sizes


def test_collisions_are_kept_in_order_and_reported(store: Store) -> None:
    first, second = rec("X", name="one"), rec("X", name="two")
    stats = store.store_batch("csv", "snapshot", "a.csv", [first, rec("Y"), second])

    assert stats.collisions == 1
    assert [r.name for r in records_of(store, "X")] == ["one", "two"]

    stats = store.store_batch("csv", "snapshot", "a.csv", [rec("X", name="one"), rec("Y")])
    assert (stats.removed, stats.touched) == (1, 1)
    assert [r.name for r in records_of(store, "X")] == ["one"]


def test_refused_batch_leaves_only_its_audit_trail(store: Store) -> None:
    store.store_batch("csv", "snapshot", "old.csv", [rec("KEEP")])

    with store.stage("csv", mode="snapshot", origin="bad.csv") as staged:
        staged.add([rec("A"), rec("B"), Reject("csv", "bad.csv:3", "no serial")])
        stats = staged.commit(accepted=False, reason="40% of rows rejected")

    assert not stats.accepted
    assert records_of(store, "A") == []
    assert len(records_of(store, "KEEP")) == 1  # the snapshot did not replace anything
    assert store.source_counts()["csv"] == (None, 1)
    (batch, _) = store.batches("csv")
    assert (batch.origin, batch.accepted, batch.reason) == (
        "bad.csv",
        False,
        "40% of rows rejected",
    )
    (reject,) = store.rejects()
    assert (reject.location, reject.reason, reject.batch_id) == ("bad.csv:3", "no serial", batch.id)


def test_staging_writes_each_block_before_it_reads_the_next(store: Store) -> None:
    sizes = [3, 1, 4, 2]
    blocks = [
        RecordBlock(
            source="csv",
            serials=[f"B{b}-{i}" for i in range(size)],
            origins=[f"a.csv:{b * 10 + i}" for i in range(size)],
            payloads=[rec(f"B{b}-{i}").payload() for i in range(size)],
            wanted=[True] * size,
            actions=["upsert"] * size,
        )
        for b, size in enumerate(sizes)
    ]
    staged_when_asked: list[int] = []

    def read(staged: StagedBatch) -> Iterator[RecordBlock | DeviceRecord]:
        for block in blocks:
            staged_when_asked.append(staged.records)  # the blocks before are written
            yield block
        yield rec("LAST")

    with store.stage("csv", mode="snapshot", origin="a.csv") as staged:
        staged.add(read(staged))  # a 1M-row file is some 200 blocks: never all held
        stats = staged.commit(accepted=True)

    assert staged_when_asked == [0, 3, 4, 8]
    assert stats.accepted
    assert store.source_counts()["csv"][1] == sum(sizes) + 1


def test_exception_while_staging_stores_nothing(store: Store) -> None:
    def broken() -> Iterator[DeviceRecord]:
        yield from (rec(f"S{i}") for i in range(10))
        raise OSError("source went away")

    with (
        pytest.raises(OSError, match="went away"),
        store.stage("csv", mode="snapshot", origin="a.csv") as staged,
    ):
        staged.add(broken())

    assert store.batches() == []
    assert records_of(store, "S1") == []
    # The staging tables were cleaned up: the next batch works.
    assert store.store_batch("csv", "snapshot", "a.csv", [rec("S1")]).inserted == 1


def test_record_from_another_source_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="netbox"):
        store.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("B", "netbox")])
    assert records_of(store, "A") == []


def test_items_are_streamed_and_the_verdict_asked_after_them(store: Store) -> None:
    total = CHUNK * 2 + 17

    @dataclass
    class Source:
        produced: int = 0

        def items(self) -> Iterator[DeviceRecord]:
            for i in range(total):
                self.produced += 1
                yield rec(f"S{i:06d}")

    source = Source()
    seen_at_verdict: list[int] = []

    @dataclass(frozen=True)
    class Verdict:
        accepted: bool
        reason: str

    def verdict() -> Verdict:
        seen_at_verdict.append(source.produced)
        return Verdict(True, "")

    stats = store.store_batch("csv", "snapshot", "big.csv", source.items(), verdict=verdict)

    assert seen_at_verdict == [total]
    assert (stats.records, stats.inserted) == (total, total)
    assert store.source_counts()["csv"] == (None, total)


def test_watermark_is_saved_only_with_an_accepted_batch(store: Store) -> None:
    store.store_batch("nb", "delta", "nb", [rec("A", "nb")], watermark={"since": "t1"})
    assert store.watermark("nb") == {"since": "t1"}

    with store.stage("nb", mode="delta", origin="nb") as staged:
        staged.add([rec("B", "nb")])
        staged.commit(accepted=False, reason="pull interrupted", watermark={"since": "t2"})
    assert store.watermark("nb") == {"since": "t1"}

    store.set_watermark("nb", {"since": "t3"})
    assert store.watermark("nb") == {"since": "t3"}
    assert store.watermark("unknown") is None


def test_record_rejects_keeps_them_for_the_audit(store: Store) -> None:
    run = store.begin_run("test", "fp")
    n = store.record_rejects(
        run, [Reject("csv", f"a.csv:{i}", "bad ip", serial_number=f"S{i}") for i in range(3)]
    )

    assert n == 3
    assert [r.location for r in store.rejects(run)] == ["a.csv:2", "a.csv:1", "a.csv:0"]
    assert store.rejects(run + 1) == []


def test_shrink_baseline_moves_only_when_a_plan_is_released(store: Store) -> None:
    store.store_batch("csv", "snapshot", "a.csv", [rec(f"S{i}") for i in range(10)])
    assert store.source_counts()["csv"] == (None, 10)
    plan_everything(store)
    assert store.source_counts()["csv"] == (10, 10)

    store.store_batch("csv", "snapshot", "a.csv", [rec("S1")])
    run = store.begin_run("test", "fp")
    store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[], held=True, hold_reasons=["csv shrank"]))
    # A second small pull while the plan waits must not make the shrink look normal.
    store.store_batch("csv", "snapshot", "a.csv", [rec("S1")])
    assert store.source_counts()["csv"] == (10, 1)

    store.approve_run(run, "alice")
    assert store.source_counts()["csv"] == (1, 1)


def test_concurrent_batches_of_two_sources_leave_correct_hashes(store: Store) -> None:
    serials = [f"S{i:04d}" for i in range(600)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def pull(source: str) -> None:
        barrier.wait()
        try:
            for round_ in range(3):
                batch = [rec(s, source, location=f"{source}-{round_}") for s in serials]
                store.store_batch(source, "snapshot", source, batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(name,)) for name in ("csv", "netbox")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    hashes = desired_hashes(store)
    for serial in ("S0000", "S0299", "S0599"):
        keys = [f"{r.source}:0:{r.content_hash()}" for r in records_of(store, serial)]
        assert len(keys) == 2
        assert hashes[serial] == combined_hash(keys)


def test_snapshot_keeps_the_rows_of_a_serial_only_a_reject_names(store: Store) -> None:
    store.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("B"), rec("C")])

    stats = store.store_batch(
        "csv",
        "snapshot",
        "b.csv",
        [rec("A"), Reject("csv", "b.csv:3", "ip_address: '10.0.0.300' is not an IP", "B")],
    )

    assert (stats.records, stats.rejects, stats.removed) == (1, 1, 1)  # C only
    assert [r.origin for r in records_of(store, "B")] == ["csv:B"]  # kept as it was
    assert records_of(store, "C") == []
    assert set(desired_hashes(store)) == {"A", "B"}  # C was never planned: it just goes


def test_a_reject_beside_a_good_row_of_the_same_serial_does_not_keep_old_rows(
    store: Store,
) -> None:
    store.store_batch("csv", "snapshot", "a.csv", [rec("A", location="old")])

    store.store_batch(
        "csv",
        "snapshot",
        "b.csv",
        [rec("A", location="new"), Reject("csv", "b.csv:3", "bad cell", "A")],
    )

    (record,) = records_of(store, "A")
    assert record.location == "new"
