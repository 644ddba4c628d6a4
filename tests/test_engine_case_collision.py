"""Serials that differ only by case within one source are conflicts, never two creates."""

from __future__ import annotations

import dataclasses

from syncd.engine import Candidate, MirrorEntry, Tombstone
from syncd.records import CASE_COLLISION
from tests.test_engine_support import INVENTORY_DEFAULTS, NOW, rec, run


def marked(serial: str, other: str) -> Candidate:
    record = dataclasses.replace(rec(serial), extra=((CASE_COLLISION, other),))
    return Candidate(serial, (record,))


def test_both_spellings_are_conflicts_and_nothing_is_written() -> None:
    result = run(marked("T8JKSZP", "t8jkszp"), marked("t8jkszp", "T8JKSZP"))
    assert result.writes() == []
    conflicts = {op.serial_number: op.reason for op in result.of_kind("conflict")}
    assert set(conflicts) == {"T8JKSZP", "t8jkszp"}
    assert "'t8jkszp'" in conflicts["T8JKSZP"]
    assert "case" in conflicts["T8JKSZP"]


def test_a_marked_device_already_owned_is_neither_updated_nor_deleted() -> None:
    record = dataclasses.replace(rec("AB1", name="renamed"), extra=((CASE_COLLISION, "ab1"),))
    owned = MirrorEntry("AB1", dict(INVENTORY_DEFAULTS), dict(INVENTORY_DEFAULTS), "created")
    tomb = Tombstone(NOW, 2)
    result = run(Candidate("AB1", (record,), owned, tomb))
    assert [op.kind for op in result.operations] == ["conflict"]
    assert result.tombstones == {"AB1": None}


def test_unmarked_records_with_extra_data_plan_as_usual() -> None:
    record = dataclasses.replace(rec("CD1"), extra=(("netbox_id", "17"),))
    result = run(Candidate("CD1", (record,)))
    assert [op.kind for op in result.operations] == ["create"]
