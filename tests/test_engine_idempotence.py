"""Idempotence: once a plan's writes are applied, planning again writes nothing, and
reports the same conflicts, rejects and skips as before.

Random scenarios (seeded, so a failure is reproducible by its seed) over small pools
of values chosen to hit the awkward cases: empty strings, unnormalised addresses,
ambiguous and unknown types, hand edits, unknown detail-only fields, several sources,
collisions, orphans.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from syncd.engine import (
    DETAIL_ONLY,
    Candidate,
    FieldPolicy,
    MirrorEntry,
    Operation,
    Ownership,
    Plan,
    Policy,
    Tombstone,
)
from syncd.records import DeviceRecord
from tests.test_engine_support import NOW, apply_plan, run

SOURCES = ("netbox", "csv", "erp")
RECORD_POOLS: dict[str, list[Any]] = {
    "name": ["sw-a", "sw-b", "", None],
    "device_type": ["C9300-48P", "c9300-48p", "ISR4331", "router", 10, 12, None, "switch", 99],
    "organization": ["Acme", "GLX", "globex", 1, None, "Initrode"],
    "status": [True, False, None],
    "ip_address": ["10.0.0.1", "10.0.0.2", "2001:DB8::1", "2001:db8::1", "", None, "bad"],
    "mac_address": ["AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:01", "", None],
    "location": ["Rack 1", "Rack 2", "", None],
    "description": ["core", "edge", "", None],
    "firmware_version": ["17.9", "17.6", "", None],
}
INVENTORY_POOLS: dict[str, list[Any]] = {
    "name": ["sw-a", "sw-b", "by-hand"],
    "type": [10, 11, 12],
    "organization": [1, 2],
    "status": [True, False],
    "ip_address": ["10.0.0.1", "2001:db8::1", "2001:DB8::1", "", None],
    "mac_address": ["aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:01", None],
    "location": ["Rack 1", "Rack 3", "", None],
    "description": ["core", "by-hand", None],
    "firmware_version": ["17.9", "16.1", None],
}
POLICIES = [
    Policy.default(source_priority=("netbox", "csv"), orphan_grace_runs=0, orphan_grace_seconds=0),
    Policy.default(
        orphan_grace_runs=0,
        orphan_grace_seconds=0,
        adopt=False,
        fields={
            "status": FieldPolicy("managed", sources=("erp",)),
            "location": FieldPolicy("create_only"),
            "name": FieldPolicy("managed", on_manual_edit="overwrite"),
            "description": FieldPolicy("ignore"),
        },
    ),
    Policy.default(
        delete_orphans=False,
        fields={
            "ip_address": FieldPolicy("managed", sources=("csv",), on_manual_edit="overwrite"),
            "mac_address": FieldPolicy("create_only"),
            "firmware_version": FieldPolicy("managed", on_manual_edit="overwrite"),
        },
    ),
]


def _record(rng: random.Random, serial: str, source: str) -> DeviceRecord:
    values = {name: rng.choice(pool) for name, pool in RECORD_POOLS.items()}
    roll = rng.random()
    return DeviceRecord(
        source=source,
        serial_number=serial,
        origin=f"{source}:{serial}",
        wanted=roll > 0.1,
        action="delete" if roll < 0.05 else "upsert",
        **values,
    )


def _mirror(rng: random.Random, serial: str) -> MirrorEntry | None:
    if rng.random() < 0.3:
        return None
    values = {name: rng.choice(pool) for name, pool in INVENTORY_POOLS.items()}
    for name in DETAIL_ONLY:  # the list endpoint usually does not show these
        if rng.random() < 0.7:
            del values[name]
    written = {name: value for name, value in values.items() if rng.random() < 0.5}
    for name in DETAIL_ONLY:
        if rng.random() < 0.5:
            written[name] = rng.choice(INVENTORY_POOLS[name])
    ownership: Ownership = rng.choice(["created", "adopted", "unmanaged"])
    return MirrorEntry(serial, values, written, ownership)


def _candidates(seed: int, count: int) -> list[Candidate]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        serial = f"S{seed}-{i}"
        sources = rng.sample(SOURCES, rng.choice([0, 1, 1, 1, 2, 2, 3]))
        if sources and rng.random() < 0.05:
            sources.append(sources[0])  # a collision
        records = [_record(rng, serial, source) for source in sources]
        tombstone = Tombstone(NOW, rng.randint(1, 4)) if rng.random() < 0.2 else None
        out.append(Candidate(serial, records, _mirror(rng, serial), tombstone))
    return out


def _reports(result: Plan) -> list[Operation]:
    return [op for op in result.operations if not op.is_write]


@pytest.mark.parametrize("seed", range(12))
def test_planning_the_applied_plan_writes_nothing(seed: int) -> None:
    policy = POLICIES[seed % len(POLICIES)]
    candidates = _candidates(seed, 400)
    first = run(*candidates, policy=policy)
    assert first.writes(), "the scenario should have something to do"
    second = run(*apply_plan(first, candidates), policy=policy)
    assert second.writes() == []
    assert _reports(second) == _reports(first)


def test_the_random_scenarios_reach_every_kind_of_operation() -> None:
    kinds: set[str] = set()
    for seed in range(12):
        policy = POLICIES[seed % len(POLICIES)]
        kinds.update(op.kind for op in run(*_candidates(seed, 400), policy=policy).operations)
    assert kinds == {"create", "adopt", "update", "delete", "conflict", "reject", "skip"}


def test_a_readable_round_trip() -> None:
    # the common life of a device: created, then moved, then edited by hand
    policy = Policy.default()
    record = DeviceRecord(
        source="netbox",
        serial_number="FOC1",
        name="sw-1",
        device_type="C9300-48P",
        organization="Acme",
        ip_address="2001:DB8::1",
        mac_address="AA-BB-CC-DD-EE-FF",
        description="core",
    )
    start = [Candidate("FOC1", [record])]
    created = run(*start, policy=policy)
    assert [op.kind for op in created.operations] == ["create"]
    after_create = apply_plan(created, start)
    assert run(*after_create, policy=policy).operations == []

    moved = [Candidate("FOC1", [_with(record, location="Rack 9")], after_create[0].mirror)]
    update = run(*moved, policy=policy)
    assert [(op.kind, list(op.changes)) for op in update.operations] == [("update", ["location"])]
    after_move = apply_plan(update, moved)
    assert run(*after_move, policy=policy).operations == []

    entry = after_move[0].mirror
    assert entry is not None
    edited = [
        Candidate(
            "FOC1",
            moved[0].records,
            MirrorEntry("FOC1", {**entry.values, "name": "by-hand"}, entry.written, "created"),
        )
    ]
    report = run(*edited, policy=policy)
    assert [op.kind for op in report.operations] == ["conflict"]
    # a conflict writes nothing, so it is reported again, the same, until someone acts
    assert run(*apply_plan(report, edited), policy=policy).operations == report.operations


def _with(record: DeviceRecord, **changes: Any) -> DeviceRecord:
    return replace(record, **changes)
