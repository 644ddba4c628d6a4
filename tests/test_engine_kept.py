"""A conflict resolved by keeping the inventory's value (``MirrorEntry.kept``): settled
for exactly the pair a person decided on, and judged afresh as soon as either side moves."""

from __future__ import annotations

from syncd.engine import Candidate, MirrorEntry
from tests.test_engine_support import mirror, only, rec, run

WRITTEN = {"name": "sw-1", "type": 10, "organization": 1, "location": "A"}


def _edited(**kept: tuple[object, object]) -> MirrorEntry:
    entry = mirror(name="by-hand", location="A", written=WRITTEN)
    return entry._replace(kept=kept)


def test_the_kept_pair_is_neither_written_nor_reported() -> None:
    entry = _edited(name=("by-hand", "sw-1"))
    result = run(Candidate("SN1", [rec(name="sw-1", location="A")], entry))
    assert result.operations == []


def test_the_other_fields_still_update() -> None:
    entry = _edited(name=("by-hand", "sw-1"))
    result = run(Candidate("SN1", [rec(name="sw-1", location="B")], entry))
    assert only(result) == ("update", {"location": ("A", "B")})


def test_a_new_source_value_is_a_conflict_again() -> None:
    entry = _edited(name=("by-hand", "sw-1"))
    result = run(Candidate("SN1", [rec(name="sw-2", location="A")], entry))
    assert only(result) == ("conflict", {"name": ("by-hand", "sw-2")})


def test_a_new_inventory_value_is_judged_by_the_rules() -> None:
    entry = mirror(name="by-hand-again", location="A", written=WRITTEN)._replace(
        kept={"name": ("by-hand", "sw-1")}
    )
    result = run(Candidate("SN1", [rec(name="sw-1", location="A")], entry))
    assert only(result) == ("conflict", {"name": ("by-hand-again", "sw-1")})
