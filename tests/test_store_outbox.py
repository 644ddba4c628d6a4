"""The outbox: claiming, completing and retrying changes; the audit queries.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine import FieldChange, Operation, Plan
from syncd.log import register_secret
from syncd.records import DeviceRecord
from syncd.store import Store
from tests import pg

db_url = pg.db_url

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def create(serial: str) -> Operation:
    return Operation(
        kind="create",
        serial_number=serial,
        changes={"name": FieldChange(None, f"name-{serial}")},
        reason="new in csv",
        sources=("csv",),
    )


def planned(store: Store, *serials: str) -> int:
    """A run whose plan creates ``serials`` (stored as csv records first)."""
    store.store_batch(
        "csv",
        "delta",
        "d",
        [DeviceRecord(source="csv", serial_number=s, name=f"name-{s}") for s in serials],
    )
    run = store.begin_run("test", "fp")
    store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[create(s) for s in serials]))
    return run


def test_outbox_lists_pending_changes_oldest_first(store: Store) -> None:
    first = planned(store, "A", "B")
    second = planned(store, "C")

    assert [c.serial_number for c in store.pending_changes()] == ["A", "B", "C"]
    assert [c.serial_number for c in store.pending_changes(limit=2)] == ["A", "B"]
    assert [c.serial_number for c in store.pending_changes(run_id=second)] == ["C"]
    assert store.change_counts(first) == {"pending": 2}


def test_exactly_one_of_racing_workers_claims_a_change(store: Store, db_url: str) -> None:
    planned(store, "A")
    (change,) = store.pending_changes()
    workers = 8
    barrier = threading.Barrier(workers)
    wins: list[bool] = []
    lock = threading.Lock()
    # Half the workers use a second Store (its own engine and pool), like another process.
    with Store.open(db_url, migrate=False) as other:

        def work(index: int) -> None:
            barrier.wait()
            won = (store if index % 2 else other).claim_change(change.id)
            with lock:
                wins.append(won)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(wins) == [False] * (workers - 1) + [True]
    claimed = store.change(change.id)
    assert claimed is not None
    assert (claimed.status, claimed.attempts) == ("applying", 1)
    assert store.pending_changes() == []


def test_applied_write_completes_the_change_and_the_mirror_together(store: Store) -> None:
    run = planned(store, "A")
    (change,) = store.pending_changes()
    assert store.claim_change(change.id)

    store.record_write(
        "A",
        "create",
        change.body(),
        None,
        change_id=change.id,
        response={"status_code": 201, "detail": "created"},
        now=T0,
    )

    done = store.change(change.id)
    assert done is not None
    assert (done.status, done.applied_at, done.response) == (
        "applied",
        T0,
        {"status_code": 201, "detail": "created"},
    )
    assert store.owned_total() == 1
    assert store.change_counts(run) == {"applied": 1}
    assert store.complete_change(change.id, "failed", error="late") is False  # already final


def test_response_summary_never_keeps_headers_or_tokens(store: Store) -> None:
    token = "tok-3c1f9a77e2"
    register_secret(token)
    planned(store, "A")
    (change,) = store.pending_changes()
    store.claim_change(change.id)

    store.complete_change(
        change.id,
        "failed",
        response={
            "status_code": 400,
            "detail": f"bad request (echoed Bearer {token})",
            "headers": {"Authorization": f"Bearer {token}"},
            "request": {"authorization": token},
        },
        error=f"server said no to {token}",
    )

    failed = store.change(change.id)
    assert failed is not None
    assert failed.response is not None
    assert set(failed.response) == {"status_code", "detail"}
    assert token not in repr(failed)
    assert failed.error is not None
    assert "server said no" in failed.error


def test_failed_change_is_planned_again_next_run(store: Store) -> None:
    planned(store, "A", "B")
    a, _b = store.pending_changes()
    store.claim_change(a.id)

    store.complete_change(a.id, "failed", {"status_code": 400, "detail": "bad name"}, "bad name")

    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == ["A"]


def test_released_change_returns_to_the_outbox(store: Store) -> None:
    planned(store, "A")
    (change,) = store.pending_changes()
    store.claim_change(change.id)

    assert store.release_change(change.id, "429, retry after 2s")
    assert store.release_change(change.id) is False  # not applying any more

    (again,) = store.pending_changes()
    assert (again.attempts, again.error) == (1, "429, retry after 2s")
    assert store.claim_change(again.id)
    claimed = store.change(again.id)
    assert claimed is not None
    assert claimed.attempts == 2


def test_stale_claims_of_dead_workers_are_requeued(store: Store) -> None:
    planned(store, "A", "B")
    a, b = store.pending_changes()
    store.claim_change(a.id, now=T0)
    store.claim_change(b.id, now=T0 + timedelta(minutes=9))

    requeued = store.requeue_stale(timedelta(minutes=5), now=T0 + timedelta(minutes=10))

    assert requeued == 1
    assert [c.id for c in store.pending_changes()] == [a.id]


def test_audit_queries_filter_and_page(store: Store) -> None:
    first = planned(store, "A", "B")
    second = planned(store, "C")

    assert [c.serial_number for c in store.changes()] == ["C", "B", "A"]
    assert [c.serial_number for c in store.changes(run_id=first)] == ["B", "A"]
    assert [c.serial_number for c in store.changes(serial="B")] == ["B"]
    newest = store.changes(limit=1)
    assert [c.serial_number for c in store.changes(before_id=newest[0].id)] == ["B", "A"]
    assert store.changes(status="applied") == []
    assert [r.id for r in store.runs()] == [second, first]
    assert store.run(second + 100) is None
    assert store.change(10_000) is None


def test_finish_run_merges_the_summary(store: Store) -> None:
    run = planned(store, "A")

    store.finish_run(run, "failed", {"applied": 0}, "token expired", now=T0)

    row = store.run(run)
    assert row is not None
    assert (row.status, row.error, row.finished_at) == ("failed", "token expired", T0)
    assert row.summary["operations"] == {"create": 1}
    assert row.summary["applied"] == 0
