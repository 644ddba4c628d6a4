"""Candidate selection, candidate loading and recording plans.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import sqlalchemy as sa

from syncd.engine import (
    Candidate,
    FieldChange,
    Operation,
    OperationKind,
    Plan,
    PlanContext,
    Policy,
    Tombstone,
    plan,
    settle_fields,
)
from syncd.inventory.models import Device
from syncd.records import DeviceRecord
from syncd.store import RunStateError, Store
from tests import pg

db_url = pg.db_url

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def rec(serial: str, source: str = "csv", **values: Any) -> DeviceRecord:
    values.setdefault("name", f"name-{serial}")
    return DeviceRecord(source=source, serial_number=serial, origin=f"{source}:{serial}", **values)


def device(serial: str, **fields: Any) -> Device:
    body: dict[str, Any] = {
        "serial_number": serial,
        "name": f"name-{serial}",
        "type": {"id": 3, "name": "switch", "model": "C9300"},
        "organization": {"id": 7, "name": "Acme"},
        **fields,
    }
    return Device.model_validate(body)


def op(kind: str, serial: str, **changes: tuple[object, object]) -> Operation:
    return Operation(
        kind=cast(OperationKind, kind),
        serial_number=serial,
        changes={name: FieldChange(before, after) for name, (before, after) in changes.items()},
        reason=f"{kind} {serial}",
        sources=("csv",),
        origins=(f"csv:{serial}",),
    )


def cycle(store: Store, operations: list[Operation] | None = None, fp: str = "fp") -> list[str]:
    """One run: select candidates, record a plan; returns the candidates."""
    run = store.begin_run("test", fp)
    serials = store.candidate_serials(run)
    store.record_plan(run, Plan(operations=operations or []))
    return serials


@pytest.fixture
def settled(store: Store) -> Store:
    """A store with sources and inventory that have been planned once."""
    store.store_batch("csv", "snapshot", "a.csv", [rec(s) for s in ("A", "B", "C")])
    store.refresh_mirror([device("B"), device("C"), device("X")], complete=True)
    assert cycle(store) == ["A", "B", "C", "X"]  # the first run looks at everything
    assert cycle(store) == []
    return store


def test_new_source_serial_is_a_candidate(settled: Store) -> None:
    settled.store_batch("csv", "delta", "d", [rec("NEW")])
    assert cycle(settled) == ["NEW"]


def test_changed_source_record_is_a_candidate(settled: Store) -> None:
    settled.store_batch("netbox", "snapshot", "nb", [rec("B", "netbox", location="dc9")])
    assert cycle(settled) == ["B"]


def test_changed_inventory_value_is_a_candidate(settled: Store) -> None:
    settled.refresh_mirror([device("C", name="edited")], complete=False)
    assert cycle(settled) == ["C"]


def test_serial_no_source_lists_any_more_is_a_candidate_once(settled: Store) -> None:
    settled.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("B")])
    assert cycle(settled) == ["C"]
    assert cycle(settled) == []


def test_tombstoned_serial_is_a_candidate_every_run(settled: Store) -> None:
    run = settled.begin_run("test", "fp")
    settled.candidate_serials(run)
    settled.record_plan(run, Plan(operations=[], tombstones={"X": Tombstone(T0, 1)}))

    for _ in range(2):
        run = settled.begin_run("test", "fp")
        assert settled.candidate_serials(run) == ["X"]
        (candidate,) = settled.load_candidates(["X"])
        assert candidate.tombstone == Tombstone(T0, 1)
        settled.record_plan(run, Plan(operations=[]))


def test_changed_policy_makes_every_serial_a_candidate(settled: Store) -> None:
    assert cycle(settled, fp="other policy") == ["A", "B", "C", "X"]
    assert cycle(settled, fp="other policy") == []


def test_batch_stored_while_planning_is_not_lost(settled: Store) -> None:
    run = settled.begin_run("test", "fp")
    assert settled.candidate_serials(run) == []
    settled.store_batch("csv", "delta", "d", [rec("A", name="changed meanwhile")])
    settled.record_plan(run, Plan(operations=[]))

    assert cycle(settled) == ["A"]


def test_load_candidates_brings_every_input_together(settled: Store) -> None:
    settled.store_batch("netbox", "snapshot", "nb", [rec("B", "netbox", location="dc1")])
    settled.record_write("B", "adopt", {"location": "dc1"}, None)

    (b, a, missing) = settled.load_candidates(["B", "A", "NOPE"])

    assert [r.source for r in b.records] == ["csv", "netbox"]
    assert b.mirror is not None
    assert (b.mirror.ownership, b.mirror.written) == ("adopted", {"location": "dc1"})
    assert a.mirror is None  # in the sources, not in the inventory
    assert missing == Candidate(serial_number="NOPE")


def test_record_plan_writes_one_change_per_operation(settled: Store) -> None:
    run = settled.begin_run("test", "fp")
    settled.store_batch("csv", "delta", "d", [rec("A", name="renamed"), rec("NEW")])
    assert settled.candidate_serials(run) == ["A", "NEW"]
    operations = [
        op("create", "NEW", name=(None, "name-NEW"), type=(None, 3)),
        op("conflict", "A", name=("inventory", "renamed")),
    ]

    summary = settled.record_plan(run, Plan(operations=operations, counts={"create": 1}))

    assert summary["operations"] == {"create": 1, "conflict": 1}
    (create,) = settled.pending_changes()
    assert (create.serial_number, create.operation, create.status) == ("NEW", "create", "pending")
    assert create.changes["type"] == {"before": None, "after": 3, "before_known": True}
    assert create.body() == {"serial_number": "NEW", "name": "name-NEW", "type": 3}
    assert create.to_operation() == operations[0]
    (conflict,) = settled.changes(serial="A")
    assert (conflict.status, conflict.reason, conflict.origins) == (
        "skipped",
        "conflict A",
        ("csv:A",),
    )
    run_row = settled.run(run)
    assert run_row is not None
    assert run_row.status == "applying"
    assert cycle(settled) == []  # planned serials are not planned again


def test_plan_without_writes_finishes_the_run(settled: Store) -> None:
    run = settled.begin_run("test", "fp")
    settled.candidate_serials(run)
    settled.record_plan(run, Plan(operations=[op("skip", "X")]))

    run_row = settled.run(run)
    assert run_row is not None
    assert (run_row.status, run_row.finished_at is not None) == ("done", True)
    with pytest.raises(RunStateError, match="already recorded"):
        settled.record_plan(run, Plan(operations=[]))


def test_record_plan_is_all_or_nothing(settled: Store) -> None:
    settled.store_batch("csv", "delta", "d", [rec("A", name="renamed")])
    run = settled.begin_run("test", "fp")
    assert settled.candidate_serials(run) == ["A"]
    broken = Tombstone(first_missing=None, runs_missing=1)  # type: ignore[arg-type]

    with pytest.raises(Exception, match=r"(?i)null|not-null|NOT NULL"):
        settled.record_plan(
            run,
            Plan(
                operations=[op("update", "A", name=("name-A", "renamed"))],
                tombstones={"X": broken},
            ),
        )

    assert settled.changes() == []
    run_row = settled.run(run)
    assert run_row is not None
    assert run_row.status == "planning"
    (x,) = settled.load_candidates(["X"])
    assert x.tombstone is None
    # Nothing was marked planned: the serial is still waiting.
    assert settled.candidate_serials(run) == ["A"]


def test_held_plan_waits_for_approval(settled: Store) -> None:
    run = settled.begin_run("test", "fp")
    settled.candidate_serials(run)
    held = Plan(operations=[op("delete", "X"), op("conflict", "A")], held=True, hold_reasons=["x"])

    settled.record_plan(run, held)

    assert settled.pending_changes() == []
    assert [c.status for c in settled.changes(run_id=run)] == ["skipped", "held"]
    run_row = settled.run(run)
    assert run_row is not None
    assert (run_row.status, run_row.summary["hold_reasons"]) == ("held", ["x"])

    assert settled.approve_run(run, "alice", now=T0) == 1

    (change,) = settled.pending_changes()
    assert (change.serial_number, change.operation) == ("X", "delete")
    run_row = settled.run(run)
    assert run_row is not None
    assert (run_row.status, run_row.approved_by, run_row.approved_at) == ("applying", "alice", T0)
    with pytest.raises(RunStateError, match="not held"):
        settled.approve_run(run, "alice")


def test_discarded_plan_is_planned_again(settled: Store) -> None:
    run = settled.begin_run("test", "fp")
    settled.candidate_serials(run)
    settled.record_plan(run, Plan(operations=[op("delete", "X")], held=True))

    assert settled.discard_run(run, "bob", "source glitch") == 1

    (change,) = settled.changes(run_id=run)
    assert (change.status, change.error) == ("skipped", "discarded by bob: source glitch")
    run_row = settled.run(run)
    assert run_row is not None
    assert run_row.status == "discarded"
    assert cycle(settled) == ["X"]


def test_new_plan_supersedes_waiting_changes_of_the_same_serial(settled: Store) -> None:
    first = settled.begin_run("test", "fp")
    settled.store_batch("csv", "delta", "d", [rec("A", name="v1")])
    settled.candidate_serials(first)
    settled.record_plan(first, Plan(operations=[op("create", "A", name=(None, "v1"))]))

    settled.store_batch("csv", "delta", "d", [rec("A", name="v2")])
    second = settled.begin_run("test", "fp")
    assert settled.candidate_serials(second) == ["A"]
    settled.record_plan(second, Plan(operations=[op("create", "A", name=(None, "v2"))]))

    old, new = settled.changes(serial="A")[::-1]
    assert (old.status, old.error) == ("skipped", f"superseded by run {second}")
    assert (new.status, new.changes["name"]["after"]) == ("pending", "v2")
    assert [c.id for c in settled.pending_changes()] == [new.id]


def test_plan_from_the_real_engine_round_trips(store: Store) -> None:
    """Sources and inventory in, engine plan recorded, outbox out."""
    store.refresh_mirror([device("KEEP", location="dc1")], complete=True)
    store.store_batch(
        "csv",
        "snapshot",
        "a.csv",
        [
            rec("NEW", device_type="C9300", organization="Acme", location="dc2"),
            rec("KEEP", device_type=3, organization=7, location="dc1"),
        ],
    )
    policy = Policy.default(adopt=False)
    run = store.begin_run("test", policy.fingerprint())
    serials = store.candidate_serials(run)
    context = PlanContext(now=T0, owned_total=store.owned_total(), source_counts={})

    result = plan(store.load_candidates(serials), policy, store.load_catalogue(), context)
    store.record_plan(run, result)

    (create,) = store.pending_changes(run_id=run)
    assert (create.serial_number, create.operation) == ("NEW", "create")
    assert create.body()["type"] == 3
    assert create.body()["organization"] == 7
    (skip,) = store.changes(serial="KEEP")
    assert (skip.operation, skip.status) == ("skip", "skipped")


def test_load_candidates_keeps_order_across_chunks(store: Store) -> None:
    serials = [f"S{i:05d}" for i in range(4500)]  # more than two loading chunks
    store.store_batch("csv", "snapshot", "a.csv", [rec(s) for s in serials])
    store.refresh_mirror([device(s) for s in serials[::2]], complete=True)
    wanted = serials[::-1]

    loaded = list(store.load_candidates(iter(wanted)))

    assert [c.serial_number for c in loaded] == wanted
    assert all(c.records[0].serial_number == c.serial_number for c in loaded)
    assert sum(c.mirror is not None for c in loaded) == 2250


def held_cycle(store: Store, operations: list[Operation], fp: str = "fp") -> tuple[int, list[str]]:
    """One run whose plan is held; returns the run and its candidates."""
    run = store.begin_run("test", fp)
    serials = store.candidate_serials(run)
    store.record_plan(run, Plan(operations=operations, held=True, hold_reasons=["gate"]))
    return run, serials


def test_held_plan_leaves_its_serials_candidates(settled: Store) -> None:
    settled.store_batch("csv", "delta", "d", [rec("NEW"), rec("A", name="renamed")])
    held, serials = held_cycle(
        settled,
        [op("create", "NEW", name=(None, "name-NEW")), op("update", "A", name=("name-A", "x"))],
    )
    assert serials == ["A", "NEW"]

    # The operator fixes the source instead of approving: the next run plans both again
    # and its plan replaces the held changes.
    settled.store_batch("csv", "delta", "d", [rec("NEW", name="fixed-NEW")])
    later = settled.begin_run("test", "fp")
    assert settled.candidate_serials(later) == ["A", "NEW"]
    settled.record_plan(later, Plan(operations=[op("create", "NEW", name=(None, "fixed-NEW"))]))

    assert [c.status for c in settled.changes(run_id=held)] == ["skipped", "skipped"]
    assert {c.error for c in settled.changes(run_id=held)} == {f"superseded by run {later}"}
    (create,) = settled.pending_changes()
    assert (create.run_id, create.changes["name"]["after"]) == (later, "fixed-NEW")
    assert cycle(settled) == []  # a released plan marks them planned

    with pytest.raises(RunStateError, match="not held"):  # overtaken: closed, not approvable
        settled.approve_run(held, "alice", now=T0)
    assert [c.id for c in settled.pending_changes()] == [create.id]
    run_row = settled.run(held)
    assert run_row is not None
    assert (run_row.status, run_row.error) == ("done", f"overtaken by run {later}")


def test_each_held_run_replaces_the_previous_one(settled: Store) -> None:
    settled.store_batch("csv", "delta", "d", [rec("NEW")])
    first, _ = held_cycle(settled, [op("create", "NEW", name=(None, "name-NEW"))])
    second, serials = held_cycle(settled, [op("create", "NEW", name=(None, "name-NEW"))])

    assert serials == ["NEW"]
    assert settled.change_counts(first) == {"skipped": 1}
    assert settled.change_counts(second) == {"held": 1}
    with pytest.raises(RunStateError, match="not held"):
        settled.approve_run(first, "alice")
    assert settled.approve_run(second, "alice") == 1
    (change,) = settled.pending_changes()
    assert change.run_id == second


def test_approving_the_newest_held_plan_marks_its_serials_planned(settled: Store) -> None:
    settled.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("B")])  # C dropped
    assert settled.source_counts() == {"csv": (3, 2)}
    held, serials = held_cycle(settled, [op("update", "C", location=("dc1", None))])
    assert serials == ["C"]
    settled.begin_run("dry run", "fp")  # a run that records no plan does not overtake it

    assert settled.approve_run(held, "alice") == 1

    assert settled.source_counts() == {"csv": (2, 2)}  # the shrink is accepted
    assert cycle(settled) == []  # approved: planned, like a plan never held


def test_approving_an_overtaken_held_plan_moves_no_baseline(settled: Store) -> None:
    settled.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("B")])
    first, _ = held_cycle(settled, [op("update", "C", location=("dc1", None))])
    second, _ = held_cycle(settled, [op("update", "C", location=("dc1", None))])

    with pytest.raises(RunStateError, match="not held"):
        settled.approve_run(first, "alice")

    assert settled.source_counts() == {"csv": (3, 2)}  # still gated: approve the newer one
    assert settled.change_counts(second) == {"held": 1}
    assert settled.approve_run(second, "alice") == 1
    assert settled.source_counts() == {"csv": (2, 2)}


def test_held_plan_under_a_new_policy_does_not_lose_the_full_replan(settled: Store) -> None:
    _, serials = held_cycle(settled, [], fp="new policy")
    assert serials == ["A", "B", "C", "X"]

    assert cycle(settled, fp="new policy") == ["A", "B", "C", "X"]
    assert cycle(settled, fp="new policy") == []


def test_held_plan_saves_its_tombstone_updates(settled: Store) -> None:
    """A held run counts a missing serial and clears a returning one at once: counting
    writes nothing, and a delete it makes due is held while the gate holds."""
    settled.store_batch("csv", "snapshot", "a.csv", [rec("A"), rec("C")])
    run = settled.begin_run("test", "fp")
    assert settled.candidate_serials(run) == ["B"]
    stones: dict[str, Tombstone | None] = {"B": Tombstone(T0, 1), "X": Tombstone(T0, 1)}
    settled.record_plan(run, Plan(operations=[], tombstones=stones))

    run = settled.begin_run("test", "fp")
    assert settled.candidate_serials(run) == ["B", "X"]
    settled.record_plan(
        run,
        Plan(operations=[], tombstones={"B": Tombstone(T0, 2), "X": None}, held=True),
    )

    (b, x) = settled.load_candidates(["B", "X"])
    assert b.tombstone == Tombstone(T0, 2)
    assert x.tombstone is None
    run = settled.begin_run("test", "fp")
    assert settled.candidate_serials(run) == ["B"]  # still a candidate, counted once per run


def test_discarded_held_plan_forgets_its_candidates(settled: Store) -> None:
    settled.store_batch("csv", "delta", "d", [rec("NEW")])
    held, _ = held_cycle(settled, [op("create", "NEW", name=(None, "name-NEW"))])

    assert settled.discard_run(held, "bob") == 1

    with settled.engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM plan_candidate WHERE run_id = :r"), {"r": held}
        ).scalar_one()
    assert left == 0
    assert cycle(settled) == ["NEW"]


@pytest.mark.postgres
@pytest.mark.parametrize("settle", [False, True], ids=["first-run", "settling"])
def test_candidates_come_in_code_point_order_whatever_the_databases_collation(
    settle: bool,
) -> None:
    """The engine checks the store's candidates by their order (``ordered=True``), in
    Python's order of strings; a PostgreSQL database whose collation is a language's
    (ICU en-US: ``a < B < é < Z``) must still give them in code point order."""
    server = pg.require_server()
    name = server.create_database(icu_locale="en-US")
    try:
        with Store.open(server.url(name)) as store:
            serials = ["a", "\u00e9", "Z", "B", "b"]
            store.store_batch("csv", "snapshot", "a.csv", [rec(s) for s in serials])
            policy = Policy.default()
            catalogue = store.load_catalogue()
            run = store.begin_run("test", policy.fingerprint(), now=T0)
            fields = settle_fields(policy, catalogue) if settle else None
            chosen, _ = store.settled_candidates(run, fields)

            assert list(chosen) == sorted(serials) == ["B", "Z", "a", "b", "\u00e9"]
            context = PlanContext(now=T0, owned_total=0, source_counts=store.source_counts())
            result = plan(store.load_candidates(chosen), policy, catalogue, context, ordered=True)
            assert result.counts["candidates"] == len(serials)
    finally:
        server.drop_database(name)
