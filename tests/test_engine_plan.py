"""Plan-wide behaviour: collisions, ordering, counts, and what ``plan()`` refuses."""

from __future__ import annotations

import gc
from datetime import datetime

import pytest

from syncd.engine import (
    OPERATION_KINDS,
    Candidate,
    PlanContext,
    Policy,
    SerialRules,
    group_by_serial,
    plan,
)
from tests.test_engine_support import CATALOGUE, context, mirror, rec, run, tombstone


def test_two_records_of_one_source_for_a_serial_are_a_conflict_and_nothing_is_written() -> None:
    records = [
        rec("T8JKSZP", origin="netbox device 11", location="A"),
        rec("t8jkszp", origin="netbox device 12", location="B"),
    ]
    groups, _ = group_by_serial(records, SerialRules(case="upper"))
    result = run(Candidate("T8JKSZP", groups["T8JKSZP"], mirror("T8JKSZP", location="Z")))
    [op] = result.operations
    assert op.kind == "conflict"
    assert op.reason == (
        "serial collision: source 'netbox' has 2 records for it: netbox device 11 "
        "(serial 'T8JKSZP'), netbox device 12 (serial 't8jkszp'); nothing written"
    )
    assert op.origins == ("netbox device 11", "netbox device 12")
    assert dict(op.changes) == {}


def test_a_collision_is_reported_even_beside_a_good_record_of_another_source() -> None:
    records = [
        rec(origin="netbox device 1"),
        rec(origin="netbox device 2"),
        rec(source="csv"),
    ]
    result = run(Candidate("SN1", records))
    assert [op.kind for op in result.operations] == ["conflict"]
    assert result.operations[0].sources == ("netbox",)


def test_a_collision_of_a_wanted_serial_still_clears_its_tombstone_but_never_deletes() -> None:
    records = [rec(origin="a"), rec(origin="b")]
    result = run(
        Candidate("SN1", records, mirror(), tombstone(9, 9)),
        policy=Policy.default(orphan_grace_runs=0, orphan_grace_seconds=0),
    )
    assert [op.kind for op in result.operations] == ["conflict"]
    assert result.tombstones == {"SN1": None}


def test_records_of_different_sources_for_one_serial_are_not_a_collision() -> None:
    result = run(Candidate("SN1", [rec(), rec(source="csv")]))
    assert [op.kind for op in result.operations] == ["create"]


def test_operations_are_sorted_by_serial_then_kind() -> None:
    hand_edited = mirror(
        "B",
        name="by-hand",
        location="A",
        written={"name": "sw-1", "type": 10, "organization": 1, "location": "A"},
    )
    result = run(
        Candidate("C", [rec("C")]),
        Candidate("B", [rec("B", location="New")], hand_edited),
        Candidate("A", [rec("A", device_type="nonesuch")]),
        Candidate("D", [], mirror("D"), tombstone(9, 9)),
    )
    assert [(op.serial_number, op.kind) for op in result.operations] == [
        ("A", "reject"),
        ("B", "update"),
        ("B", "conflict"),
        ("C", "create"),
        ("D", "delete"),
    ]
    order = [OPERATION_KINDS.index(op.kind) for op in result.operations if op.serial_number == "B"]
    assert order == sorted(order)


def test_the_same_input_in_any_order_gives_the_same_plan() -> None:
    candidates = [Candidate(f"S{i}", [rec(f"S{i}")]) for i in range(20)]
    forward = run(*candidates)
    backward = run(*reversed(candidates))
    assert forward.operations == backward.operations


def test_counts_cover_every_candidate() -> None:
    result = run(
        Candidate("A", [rec("A")]),
        Candidate("B", [rec("B")], mirror("B")),
        Candidate("C", [rec("C", device_type="nonesuch")]),
    )
    assert result.counts["candidates"] == 3
    assert (result.counts["create"], result.counts["unchanged"], result.counts["reject"]) == (
        1,
        1,
        1,
    )
    assert result.writes() == result.of_kind("create")


def test_a_serial_in_two_candidates_is_refused() -> None:
    with pytest.raises(ValueError, match="serial 'A' is in two candidates"):
        run(Candidate("A", [rec("A")]), Candidate("A", [rec("A", source="csv")]))


def test_ordered_candidates_are_checked_by_their_order_not_remembered() -> None:
    """The store's candidates come in code point order: ``ordered=True`` plans them the
    same, and refuses a repeated or out-of-order serial without holding every serial."""
    candidates = [
        Candidate("B", [rec("B")]),
        Candidate("Z", [rec("Z")], mirror("Z")),
        Candidate("a", [rec("a", device_type="nonesuch")]),
        Candidate("\u00e9", [rec("\u00e9")]),
    ]
    unordered = plan(candidates, Policy.default(), CATALOGUE, context())
    ordered = plan(candidates, Policy.default(), CATALOGUE, context(), ordered=True)
    assert ordered.operations == unordered.operations
    assert ordered.counts == unordered.counts
    assert ordered.counts["candidates"] == 4
    for repeated in (candidates[:2] + candidates[1:2], candidates[1:] + candidates[:1]):
        with pytest.raises(ValueError, match="not ordered"):
            plan(repeated, Policy.default(), CATALOGUE, context(), ordered=True)


def test_an_empty_run_is_an_empty_plan() -> None:
    result = run()
    assert (result.operations, result.held, result.tombstones) == ([], False, {})
    assert result.counts["candidates"] == 0


def test_plan_context_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PlanContext(now=datetime(2026, 1, 1))


def test_plan_restores_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    run(Candidate("A", [rec("A")]))
    assert gc.isenabled()
    gc.disable()
    try:
        run(Candidate("A", [rec("A")]))
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ValueError, match="two candidates"):
        run(Candidate("A", []), Candidate("A", []))
    assert gc.isenabled()


def test_plan_accepts_a_generator() -> None:
    generated = (Candidate(f"S{i}", [rec(f"S{i}")]) for i in range(3))
    result = plan(generated, Policy.default(), CATALOGUE, context())
    assert [op.serial_number for op in result.operations] == ["S0", "S1", "S2"]


def test_planning_is_pure_same_input_same_plan_input_untouched() -> None:
    entry = mirror("B", location="A")
    candidates = [
        Candidate("A", [rec("A")]),
        Candidate("B", [rec("B", location="C")], entry),
        Candidate("D", [], mirror("D"), tombstone(1, 1)),
    ]
    snapshot = repr(candidates)
    first = run(*candidates)
    second = run(*candidates)
    assert (first.operations, first.tombstones, first.counts) == (
        second.operations,
        second.tombstones,
        second.counts,
    )
    assert repr(candidates) == snapshot
