"""The outbox: claiming, completing and retrying changes; the audit queries.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine import FieldChange, Operation, Plan
from syncd.inventory.models import Device
from syncd.log import register_secret
from syncd.records import DeviceRecord
from syncd.store import ChangeRow, Store
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


def claimed(store: Store, change_id: int) -> ChangeRow:
    change = store.change(change_id)
    assert change is not None
    assert change.status == "applying"
    return change


def test_abandoned_claims_are_failed_and_their_serials_planned_afresh(store: Store) -> None:
    planned(store, "A", "B")
    a, b = store.pending_changes()
    store.claim_change(a.id, owner="dead", now=T0)
    store.claim_change(b.id, owner="alive", now=T0)

    assert store.abandon(claimed(store, a.id), "recoverer", now=T0 + timedelta(minutes=1))

    assert store.pending_changes() == []  # never sent again as it stands
    dead = store.change(a.id)
    assert dead is not None
    assert (dead.status, dead.error) == ("failed", "abandoned: the process applying it stopped")
    assert dead.claimed_by == "recoverer"
    assert [c.id for c in store.claimed_changes()] == [b.id]  # its worker may still finish
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == ["A"]


def test_only_one_of_racing_recoverers_takes_a_claim(store: Store) -> None:
    planned(store, "A")
    (a,) = store.pending_changes()
    store.claim_change(a.id, owner="dead", now=T0)
    seen = claimed(store, a.id)

    assert store.take_over(seen, "first", now=T0)
    assert not store.take_over(seen, "second", now=T0)  # it no longer reads as seen
    assert not store.abandon(seen, "second", now=T0)
    assert claimed(store, a.id).claimed_by == "first"


def _device(serial: str, name: str) -> Device:
    return Device.model_validate(
        {
            "serial_number": serial,
            "name": name,
            "type": {"id": 3, "name": "switch"},
            "organization": {"id": 7, "name": "Acme"},
        }
    )


def _update(serial: str, before: str, after: str) -> Operation:
    return Operation(
        kind="update",
        serial_number=serial,
        changes={"name": FieldChange(before, after)},
        reason="name changed in csv",
        sources=("csv",),
    )


def test_stale_patch_never_reverts_a_newer_value(store: Store) -> None:
    store.store_batch("csv", "snapshot", "a.csv", [DeviceRecord("csv", "A", name="v1")])
    store.refresh_mirror([_device("A", "v1")], complete=True)
    store.record_write("A", "adopt", {"name": "v1"}, _device("A", "v1"))
    # Run 1 plans v2, claims the PATCH and its process dies.
    store.store_batch("csv", "snapshot", "a.csv", [DeviceRecord("csv", "A", name="v2")])
    run1 = store.begin_run("test", "fp")
    assert store.candidate_serials(run1) == ["A"]
    store.record_plan(run1, Plan(operations=[_update("A", "v1", "v2")]), now=T0)
    (stale,) = store.pending_changes()
    assert store.claim_change(stale.id, now=T0)
    # Run 2 plans and applies v3.
    store.store_batch("csv", "snapshot", "a.csv", [DeviceRecord("csv", "A", name="v3")])
    run2 = store.begin_run("test", "fp")
    assert store.candidate_serials(run2) == ["A"]
    store.record_plan(run2, Plan(operations=[_update("A", "v1", "v3")]), now=T0)
    (newer,) = store.pending_changes()
    # One serial's changes go out in order: v3 waits while the v2 PATCH is claimed.
    assert store.claim(newer.id, now=T0 + timedelta(minutes=1)) == "busy"

    assert store.abandon(claimed(store, stale.id), "recoverer", now=T0 + timedelta(minutes=11))

    assert store.claim_change(newer.id, now=T0 + timedelta(minutes=11))
    store.record_write("A", "update", {"name": "v3"}, _device("A", "v3"), change_id=newer.id)
    assert store.pending_changes() == []  # the v2 PATCH is never sent
    run3 = store.begin_run("test", "fp")
    assert store.candidate_serials(run3) == ["A"]  # planned afresh from the mirror
    (candidate,) = store.load_candidates(["A"])
    assert candidate.mirror is not None
    assert candidate.mirror.values["name"] == "v3"
    assert candidate.mirror.written["name"] == "v3"


def test_stale_delete_of_a_device_wanted_again_is_not_sent(store: Store) -> None:
    store.refresh_mirror([_device("X", "x")], complete=True)
    store.record_write("X", "adopt", {"name": "x"}, _device("X", "x"))
    run1 = store.begin_run("test", "fp")
    store.candidate_serials(run1)
    store.record_plan(run1, Plan(operations=[Operation(kind="delete", serial_number="X")]))
    (delete,) = store.pending_changes()
    assert store.claim_change(delete.id, now=T0)
    store.store_batch("csv", "delta", "d", [DeviceRecord("csv", "X", name="x")])  # wanted again

    assert store.abandon(claimed(store, delete.id), "recoverer", now=T0 + timedelta(hours=1))

    assert store.pending_changes() == []
    assert store.claim_change(delete.id) is False
    run2 = store.begin_run("test", "fp")
    assert store.candidate_serials(run2) == ["X"]


def test_late_completion_of_an_abandoned_change_keeps_it_failed(store: Store) -> None:
    planned(store, "A")
    (a,) = store.pending_changes()
    store.claim_change(a.id, now=T0)
    store.abandon(claimed(store, a.id), "recoverer", now=T0 + timedelta(minutes=11))

    # The "dead" worker was only slow: its write lands in the mirror, the audit stays.
    store.record_write("A", "create", a.body(), None, change_id=a.id)

    done = store.change(a.id)
    assert done is not None
    assert (done.status, done.error) == ("failed", "abandoned: the process applying it stopped")
    assert store.owned_total() == 1
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == ["A"]  # the next plan settles it either way


def test_refused_change_is_not_planned_again_until_its_inputs_change(store: Store) -> None:
    planned(store, "A", "B")
    a, b = store.pending_changes()
    store.claim_change(a.id)
    store.claim_change(b.id)

    store.complete_change(
        a.id, "failed", {"status_code": 400, "detail": "bad name"}, "bad name", replan=False
    )
    store.complete_change(b.id, "failed", {"status_code": 503}, "gave up retrying")

    refused = store.change(a.id)
    assert refused is not None
    assert (refused.status, refused.error) == ("failed", "bad name")
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == ["B"]  # the transient failure only
    store.record_plan(run, Plan(operations=[]))
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == []
    store.record_plan(run, Plan(operations=[]))

    store.store_batch("csv", "delta", "d", [DeviceRecord("csv", "A", name="fixed")])
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == ["A"]


def test_replan_flag_does_not_touch_applied_or_skipped_changes(store: Store) -> None:
    planned(store, "A", "B")
    a, b = store.pending_changes()
    store.claim_change(a.id)

    assert store.complete_change(a.id, "skipped", error="not applied", replan=True)
    assert store.complete_change(b.id, "applied", replan=False)

    assert store.count_pending() == 0
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == []


def test_force_replan_makes_known_serials_candidates(store: Store) -> None:
    planned(store, "A", "B")
    store.refresh_mirror([_device("M", "m")], complete=False)
    run = store.begin_run("test", "fp")
    store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[]))

    known = store.force_replan(iter(["B", "M", "B", "UNKNOWN"]))

    assert known == 2
    run = store.begin_run("test", "fp")
    assert store.candidate_serials(run) == ["B", "M"]
    assert store.force_replan([]) == 0


def test_count_pending_counts_the_outbox(store: Store) -> None:
    first = planned(store, "A", "B")
    second = planned(store, "C")
    (a, _b, _c) = store.pending_changes()
    store.claim_change(a.id)

    assert store.count_pending() == 2
    assert store.count_pending(run_id=first) == 1
    assert store.count_pending(run_id=second) == 1


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
