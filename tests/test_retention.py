"""Retention of the audit log: what goes, what never does, the export, and crashes.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``). Runs and changes
are made through the store's own API, each at a given time.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from benchmarks.retention import HOT, Shape, build
from syncd.engine import FieldChange, Operation, Plan
from syncd.records import DeviceRecord, Reject
from syncd.store import Store
from syncd.store import retention as retention_module
from syncd.store.retention import PENDING, RetentionPolicy
from tests import pg

db_url = pg.db_url

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def update(serial: str, n: int = 0) -> Operation:
    return Operation(
        kind="update",
        serial_number=serial,
        changes={"name": FieldChange(f"old-{n}", f"new-{n}")},
        reason="name changed in csv",
        sources=("csv",),
        origins=(f"drop.csv:{n + 2}",),
    )


def run_at(
    store: Store,
    at: datetime,
    *serials: str,
    trigger: str = "schedule",
    final: str | None = "applied",
    held: bool = False,
) -> int:
    """A run planned at ``at`` updating ``serials``; its changes end ``final`` at ``at``
    (``None``: left pending, or held)."""
    records = [DeviceRecord(source="csv", serial_number=s, name="x") for s in serials]
    store.store_batch("csv", "delta", "drop.csv", records, now=at)
    run = store.begin_run(trigger, "fp", now=at)
    store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[update(s) for s in serials]), held=held, now=at)
    if final is not None and not held:
        for change in store.pending_changes(run_id=run, limit=1000):
            assert store.claim_change(change.id, now=at)
            assert store.complete_change(change.id, final, error="no", now=at)  # type: ignore[arg-type]
        store.close_if_final(run, "final", now=at)
    return run


def exported(folder: Path) -> list[dict[str, Any]]:
    """Every record of every finished export file, gunzipped, one JSON object a line."""
    records: list[dict[str, Any]] = []
    for file in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as lines:
            records.extend(json.loads(line) for line in lines)
    return records


def ids_of(store: Store) -> set[int]:
    return {c.id for c in store.changes(limit=100_000)}


def policy(tmp_path: Path, **limits: Any) -> RetentionPolicy:
    return RetentionPolicy(export_dir=tmp_path / "export", chunk_rows=2, **limits)


def test_age_limit_exports_then_prunes_old_final_changes(store: Store, tmp_path: Path) -> None:
    old = run_at(store, T0, "A", "B", "C", trigger="cli")
    failed = run_at(store, T0 + DAY, "D", final="failed")
    recent = run_at(store, T0 + 200 * DAY, "A", "E")
    before = {c.id: c for c in store.changes(limit=100)}

    report = store.prune(policy(tmp_path, changes_max_age=timedelta(days=90)), now=T0 + 210 * DAY)

    left = store.changes(limit=100)
    assert {c.run_id for c in left} == {recent}
    assert (report.changes.rows, report.changes.runs) == (4, 2)
    records = exported(tmp_path / "export")
    assert sorted(r["id"] for r in records) == sorted(set(before) - {c.id for c in left})
    assert sorted(report.changes.files) == sorted(p.name for p in (tmp_path / "export").iterdir())
    a = next(r for r in records if r["serial_number"] == "A")
    row = before[a["id"]]
    assert a["record"] == "change"
    assert (a["run_id"], a["run_trigger"], a["status"], a["operation"]) == (
        old,
        "cli",
        "applied",
        "update",
    )
    assert a["changes"] == {"name": {"before": "old-0", "after": "new-0", "before_known": True}}
    assert (a["sources"], a["origins"]) == (["csv"], ["drop.csv:2"])
    assert datetime.fromisoformat(a["created_at"]) == row.created_at == T0
    assert datetime.fromisoformat(a["run_started_at"]) == T0
    assert next(r for r in records if r["run_id"] == failed)["status"] == "failed"


def test_run_summaries_survive_with_a_note_of_where_their_detail_went(
    store: Store, tmp_path: Path
) -> None:
    old = run_at(store, T0, "A", "B", "C")
    run_at(store, T0 + 200 * DAY, "A")
    summary_before = store.run(old).summary  # type: ignore[union-attr]

    report = store.prune(policy(tmp_path, changes_max_age=timedelta(days=90)), now=T0 + 210 * DAY)

    kept = store.run(old)
    assert kept is not None
    assert kept.status == "done"
    note = kept.summary["retention"]
    assert {k: v for k, v in kept.summary.items() if k != "retention"} == summary_before
    assert note["changes_pruned"] == 3
    assert note["exported_to"] == str(tmp_path / "export")
    assert note["files"] == report.changes.files  # two chunks of 2 and 1 rows
    assert len(note["files"]) == 2
    assert all((tmp_path / "export" / name).is_file() for name in note["files"])
    assert store.changes(run_id=old) == []


def test_count_limit_keeps_the_newest_rows(store: Store, tmp_path: Path) -> None:
    for day in range(5):
        run_at(store, T0 + day * DAY, f"S{day}", f"T{day}")
    newest_three = sorted(ids_of(store))[-3:]

    report = store.prune(policy(tmp_path, changes_max_count=3), now=T0 + 6 * DAY)

    assert sorted(ids_of(store)) == newest_three
    assert report.changes.rows == 7
    assert len(exported(tmp_path / "export")) == 7


def test_age_and_count_together_take_the_union_once(store: Store, tmp_path: Path) -> None:
    for day in (0, 1, 50, 51):
        run_at(store, T0 + day * DAY, f"S{day}", f"T{day}")
    ids = sorted(ids_of(store))

    rules = policy(tmp_path, changes_max_age=timedelta(days=30), changes_max_count=3)
    dry = store.prune(rules, dry_run=True, now=T0 + 60 * DAY)
    report = store.prune(rules, now=T0 + 60 * DAY)

    assert sorted(ids_of(store)) == ids[-3:]  # 4 by age, then 1 more by count
    assert dry.changes.rows == report.changes.rows == 5
    records = exported(tmp_path / "export")
    assert sorted(r["id"] for r in records) == ids[:5]  # each exactly once


def test_changes_on_their_way_or_held_are_never_pruned(store: Store, tmp_path: Path) -> None:
    pending = run_at(store, T0, "P1", "P2", "P3", final=None)
    dispatched = store.dispatch(1, lease=timedelta(minutes=1), now=T0)[0].id
    applying = store.pending_changes(run_id=pending)[0].id
    assert store.claim_change(applying, now=T0)
    run_at(store, T0 + DAY, "Q1", "Q2")
    held = run_at(store, T0 + 2 * DAY, "H1", "H2", held=True)
    live = {c.id: c.status for c in store.changes(limit=100) if c.status != "applied"}
    assert sorted(live.values()) == ["applying", "dispatched", "held", "held", "pending"]
    assert dispatched in live

    rules = policy(tmp_path, changes_max_age=timedelta(hours=1), changes_max_count=1)
    report = store.prune(rules, now=T0 + 400 * DAY)

    assert {c.id: c.status for c in store.changes(limit=100)} == live
    assert report.changes.rows == 2
    assert {r["serial_number"] for r in exported(tmp_path / "export")} == {"Q1", "Q2"}
    assert store.run(held).status == "held"  # type: ignore[union-attr]


def test_the_newest_row_stays_so_that_no_id_names_two_rows(store: Store, tmp_path: Path) -> None:
    run_at(store, T0, "A", "B", "C")
    store.record_rejects(None, [Reject("csv", f"x.csv:{n}", "bad") for n in range(3)], now=T0)
    rules = policy(tmp_path, changes_max_age=timedelta(days=1), rejects_max_age=timedelta(days=1))

    report = store.prune(rules, now=T0 + 100 * DAY)

    assert (report.changes.rows, report.rejects.rows) == (2, 2)  # all old; the newest stays
    exported_ids = {(r["record"], r["id"]) for r in exported(tmp_path / "export")}
    run_at(store, T0 + 101 * DAY, "D")
    store.record_rejects(None, [Reject("csv", "y.csv:1", "bad")], now=T0 + 101 * DAY)
    new_change = max(ids_of(store))
    new_reject = max(r.id for r in store.rejects())
    assert ("change", new_change) not in exported_ids
    assert ("reject", new_reject) not in exported_ids


def test_rejects_by_age_and_count(store: Store, tmp_path: Path) -> None:
    store.record_rejects(None, [Reject("csv", "x.csv:9", "bad", "Z")], now=T0)
    for day in range(4):
        run = run_at(store, T0 + day * DAY, f"S{day}")
        bad = [Reject("csv", f"drop.csv:{n}", "serial missing", None) for n in range(3)]
        store.record_rejects(run, bad, now=T0 + day * DAY)
    all_ids = sorted(r.id for r in store.rejects(limit=100))

    rules = policy(tmp_path, rejects_max_age=timedelta(days=2), rejects_max_count=4)
    report = store.prune(rules, now=T0 + 3 * DAY + timedelta(hours=1))

    assert sorted(r.id for r in store.rejects(limit=100)) == all_ids[-4:]
    assert report.rejects.rows == len(all_ids) - 4
    assert report.changes.rows == 0  # no change limit configured
    records = [r for r in exported(tmp_path / "export") if r["record"] == "reject"]
    assert sorted(r["id"] for r in records) == all_ids[:-4]
    first = next(r for r in records if r["run_id"] is not None)
    assert (first["location"], first["reason"], first["run_trigger"]) == (
        "drop.csv:0",
        "serial missing",
        "schedule",
    )
    assert any(r["run_id"] is None and r["run_trigger"] is None for r in records)
    note = store.runs(limit=10)[-1].summary["retention"]
    assert note["rejects_pruned"] == 3


def test_idle_runs_go_after_their_short_age_the_newest_run_stays(store: Store) -> None:
    idle = []
    for hour in range(3):
        run = store.begin_run("schedule", "fp", now=T0 + timedelta(hours=hour))
        store.finish_run(run, "done", now=T0 + timedelta(hours=hour))
        assert store.mark_idle(run)
        idle.append(run)
    busy = run_at(store, T0, "A")
    last = store.begin_run("schedule", "fp", now=T0 + timedelta(hours=5))
    store.finish_run(last, "done", now=T0 + timedelta(hours=5))
    assert store.mark_idle(last)

    rules = RetentionPolicy(idle_runs_max_age=timedelta(hours=2), export=False)
    assert store.prune(rules, dry_run=True, now=T0 + timedelta(hours=10)).idle_runs == 3
    report = store.prune(rules, now=T0 + timedelta(hours=10))

    assert report.idle_runs == 3
    assert sorted(r.id for r in store.runs(limit=100)) == sorted([busy, last])
    follower = store.begin_run("cli", "fp", now=T0 + timedelta(hours=11))
    assert follower > last  # no id is given out twice


def test_dry_run_says_what_would_go_and_changes_nothing(store: Store, tmp_path: Path) -> None:
    run_at(store, T0, "A", "B")
    run_at(store, T0 + DAY, "C")
    run_at(store, T0 + 100 * DAY, "D")
    store.record_rejects(None, [Reject("csv", "x.csv:2", "bad", "Z")], now=T0)
    store.record_rejects(None, [Reject("csv", "y.csv:2", "bad", "Y")], now=T0 + 100 * DAY)
    before = ids_of(store)

    rules = policy(tmp_path, changes_max_age=timedelta(days=30), rejects_max_age=timedelta(days=30))
    report = store.prune(rules, dry_run=True, now=T0 + 101 * DAY)

    assert (report.changes.rows, report.changes.runs) == (3, 2)
    assert (report.changes.oldest, report.changes.newest) == (T0, T0 + DAY)
    assert report.rejects.rows == 1
    assert report.export_dir == tmp_path / "export"
    assert ids_of(store) == before
    assert not (tmp_path / "export").exists()


def test_export_off_prunes_without_files_and_the_note_says_so(store: Store, tmp_path: Path) -> None:
    old = run_at(store, T0, "A")
    run_at(store, T0 + 100 * DAY, "B")

    rules = RetentionPolicy(
        changes_max_age=timedelta(days=30), export=False, export_dir=tmp_path / "export"
    )
    report = store.prune(rules, now=T0 + 101 * DAY)

    assert report.changes.rows == 1
    assert report.changes.files == []
    assert not (tmp_path / "export").exists()
    note = store.run(old).summary["retention"]  # type: ignore[union-attr]
    assert "without export" in note["note"]
    assert "files" not in note


class CrashError(Exception):
    """Stands for the process dying at this point."""


def test_a_crash_between_export_and_delete_loses_and_duplicates_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(3):
        run_at(store, T0 + day * DAY, f"S{day}", f"T{day}")
    run_at(store, T0 + 100 * DAY, "N")
    originals = {c.id for c in store.changes(limit=100)}
    rules = policy(tmp_path, changes_max_age=timedelta(days=30))
    real_delete = retention_module._Pruner.delete
    calls = []

    def crash_on_second_chunk(self: Any, *args: Any) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise CrashError
        real_delete(self, *args)

    monkeypatch.setattr(retention_module._Pruner, "delete", crash_on_second_chunk)
    with pytest.raises(CrashError):
        store.prune(rules, now=T0 + 101 * DAY)
    monkeypatch.undo()

    folder = tmp_path / "export"
    assert len(list(folder.glob("*" + PENDING))) == 1  # exported, durable, not deleted
    assert len(ids_of(store)) == len(originals) - 2  # only the first chunk was deleted

    report = store.prune(rules, now=T0 + 101 * DAY)

    assert any("never pruned" in note for note in report.settled)
    assert list(folder.glob("*" + PENDING)) == []
    records = exported(folder)
    in_files = [r["id"] for r in records]
    assert len(in_files) == len(set(in_files)) == 6  # nothing twice
    assert set(in_files) | ids_of(store) == originals  # nothing lost
    assert set(in_files).isdisjoint(ids_of(store))


def test_a_crash_after_the_delete_commits_puts_the_file_in_place_next_time(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_at(store, T0, "A", "B")
    run_at(store, T0 + 100 * DAY, "N")
    originals = ids_of(store)
    rules = policy(tmp_path, changes_max_age=timedelta(days=30))

    def crash(pending: Path) -> Path:
        raise CrashError

    monkeypatch.setattr(retention_module, "finalise", crash)
    with pytest.raises(CrashError):
        store.prune(rules, now=T0 + 101 * DAY)
    monkeypatch.undo()
    folder = tmp_path / "export"
    assert exported(folder) == []  # the rows are deleted, their file still pending
    assert len(ids_of(store)) == 1

    report = store.prune(rules, now=T0 + 101 * DAY)

    assert any("now in place" in note for note in report.settled)
    assert report.changes.rows == 0
    assert {r["id"] for r in exported(folder)} | ids_of(store) == originals
    assert len(exported(folder)) == 2


def test_a_crash_while_writing_leaves_a_part_file_that_is_dropped(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_at(store, T0, "A", "B", "C")
    run_at(store, T0 + 100 * DAY, "N")
    originals = ids_of(store)
    rules = policy(tmp_path, changes_max_age=timedelta(days=30))
    real_line = retention_module.export_line

    def crash_mid_file(kind: Any, row: Any) -> bytes:
        line = real_line(kind, row)
        if json.loads(line)["serial_number"] == "B":
            raise CrashError
        return line

    monkeypatch.setattr(retention_module, "export_line", crash_mid_file)
    with pytest.raises(CrashError):
        store.prune(rules, now=T0 + 101 * DAY)
    monkeypatch.undo()
    assert ids_of(store) == originals

    store.prune(rules, now=T0 + 101 * DAY)

    folder = tmp_path / "export"
    assert [p.suffix for p in folder.iterdir()] == [".gz", ".gz"]
    assert sorted(r["serial_number"] for r in exported(folder)) == ["A", "B", "C"]


def test_a_change_sent_back_to_pending_meanwhile_is_not_pruned(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_at(store, T0, "A", "B", final="failed")
    run_at(store, T0 + 100 * DAY, "N")
    (b,) = [c for c in store.changes(limit=10) if c.serial_number == "B"]
    real_write = retention_module.write_pending

    def retry_meanwhile(*args: Any) -> Path:
        written = real_write(*args)
        if not store.changes(status="pending"):
            store.requeue_failed([b.id], now=T0 + 101 * DAY)  # `syncd retry` between the steps
        return written

    monkeypatch.setattr(retention_module, "write_pending", retry_meanwhile)
    report = store.prune(policy(tmp_path, changes_max_age=timedelta(days=30)), now=T0 + 101 * DAY)

    assert report.reread == 1
    assert store.change(b.id).status == "pending"  # type: ignore[union-attr]
    records = exported(tmp_path / "export")
    assert [r["serial_number"] for r in records] == ["A"]
    assert list((tmp_path / "export").glob("*" + PENDING)) == []


def test_audit_pages_walk_their_index_at_scale(store: Store) -> None:
    """A page of an old run and a serial's history read one index range, whatever the
    database's statistics say: at 20k rows PostgreSQL already walks the primary key
    backwards for ``run_id = 1 ORDER BY id DESC`` (reading every newer row first)."""
    shape = Shape(20_000)
    build(store, shape)  # bulk SQL, then VACUUM ANALYZE on PostgreSQL
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM change" in statement:
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        page = store.changes(run_id=1, limit=100, before_id=shape.first // 2)
        history = store.changes(serial=HOT, limit=50, before_id=shape.rows)
        failed = store.changes(status="failed", limit=20)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)

    assert [c.id for c in page] == list(range(shape.first // 2 - 1, shape.first // 2 - 101, -1))
    assert {c.run_id for c in page} == {1}
    assert len(history) == 50
    assert {c.serial_number for c in history} == {HOT}
    assert [c.id for c in history] == sorted((c.id for c in history), reverse=True)
    assert len(failed) == 20
    assert {c.status for c in failed} == {"failed"}
    prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    plans = []
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(prefix + statement, parameters)
            plans.append(" ".join(str(part) for row in rows for part in row))
    indexes = ("ix_change_run", "ix_change_serial", "ix_change_status")
    for plan, index in zip(plans, indexes, strict=True):
        assert index in plan, plan
        assert "change_pkey" not in plan, plan
    for plan in plans[:2]:  # the walk starts at the cursor, not at the end of the run
        assert "id<" in plan.replace(" ", ""), plan
