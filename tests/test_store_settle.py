"""The store settles unchanged candidates set-based (``engine.settle_fields``,
``Store.settled_candidates``) instead of loading them: pinned to the engine's own
verdicts. For a mixed population (unchanged, changed, hand edits, kept values, orphans,
ignored fields, several sources per serial, case-variant serials, new, unmanaged,
unmappable), and for several policies, the plan made from the settled candidates is
the plan made from all of them: the same operations, counts and tombstones, and the
same change rows once recorded.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncd.engine import Catalogue, FieldPolicy, Plan, PlanContext, Policy, plan, settle_fields
from syncd.inventory.models import Device
from syncd.records import CASE_COLLISION, DeviceRecord
from syncd.store import Store
from tests import pg

db_url = pg.db_url

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ABSENT: Any = object()  # a field the listing does not carry
TYPES = {3: ("switch", "C9300"), 4: ("router", "ISR4431")}
ORGS = {7: "Acme", 8: "Zürich AG"}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def device(serial: str, type_id: int = 3, org_id: int = 7, **fields: Any) -> Device:
    name, model = TYPES[type_id]
    body: dict[str, Any] = {
        "serial_number": serial,
        "name": f"name-{serial}",
        "type": {"id": type_id, "name": name, "model": model},
        "organization": {"id": org_id, "name": ORGS[org_id]},
        "location": "dc1",
        "ip_address": "10.0.0.1",
        **fields,
    }
    return Device.model_validate({k: v for k, v in body.items() if v is not ABSENT})


def rec(serial: str, source: str = "csv", **values: Any) -> DeviceRecord:
    """A record equal to ``device(serial)`` unless ``values`` say otherwise."""
    fields: dict[str, Any] = {
        "name": f"name-{serial}",
        "device_type": "C9300",
        "organization": "Acme",
        "location": "dc1",
        "ip_address": "10.0.0.1",
        **values,
    }
    return DeviceRecord(source=source, serial_number=serial, origin=f"{source}:{serial}", **fields)


# serial -> (the device as listed, what syncd wrote to it or None: not owned)
DETAIL = {"description": "edge", "mac_address": "00:1b:0d:00:bb:d2", "firmware_version": "17.9"}
INVENTORY: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    **{f"U{i}": ({}, {}) for i in range(6)},  # unchanged, owned
    "U-ID": ({}, {}),  # the source names the type by id
    "U-DETAIL": (DETAIL, DETAIL),  # detail-only fields as written
    "U-UNLISTED-DETAIL": ({}, DETAIL),  # the listing lacks them: the written ones stand
    "U-EMPTY": ({"location": None}, {}),  # the source's "" is the inventory's null
    "U-SILENT": ({"location": "dc9"}, {}),  # the source says nothing of the location
    "U-UNICODE": ({"org_id": 8, "name": "Zürich-1"}, {}),  # escaped differently in JSON
    "U-ROUTER": ({"type_id": 4}, {}),  # another type, mapped by model
    "U-STATUS": ({"status": True}, {}),  # status: ignored by default, managed below
    "U-IGNORED": ({"firmware_version": "1.0"}, {"firmware_version": "1.0"}),
    "CHANGED": ({}, {}),  # the source moved it
    "NOT-LISTED": ({"location": ABSENT}, {}),  # a listed field missing: never seen
    "CHANGED-IP": ({}, {}),
    "CHANGED-DETAIL": (DETAIL, DETAIL),
    "HAND": ({"location": "by-hand"}, {"location": "dc1"}),  # edited by hand: conflict
    "KEPT": ({"location": "kept-by-hand"}, {"location": "dc1"}),  # the conflict is kept
    "ORPHAN": ({}, {}),  # no source lists it any more
    "UNWANTED": ({}, {}),  # its source says it should go
    "UNWANTED-NOW": ({}, {}),  # since the last run only (no tombstone yet)
    "DELETE-ROW": ({}, {}),  # a delta row that deletes it
    "CLEARED": ({}, {}),  # the source empties the location
    "BACK": ({}, {}),  # tombstoned, listed by its source again
    "TWO-SOURCES": ({}, {}),
    "TWO-SOURCES-SAME": ({}, {}),
    "TWO-RECORDS": ({}, {}),  # one source, two records: a collision
    "Case-A": ({}, {}),  # the source also lists "CASE-A"
    "UNMANAGED": ({}, None),  # adopt, or skip
    "UNMANAGED-SAME": ({}, None),
    "FOREIGN": ({}, None),  # not syncd's, and no source lists it: only the mirror knows it
    "UNMAPPED": ({}, {}),  # the source's type names nothing
}
WRITTEN_BASE = {
    "name": None,
    "type": 3,
    "organization": 7,
    "location": "dc1",
    "ip_address": "10.0.0.1",
}


def listed(serial: str) -> Device:
    fields, _ = INVENTORY[serial]
    return device(serial, **fields)


def populate(store: Store) -> None:
    """The inventory, syncd's writes to it, two sources, a kept value, a tombstone."""
    store.refresh_mirror([listed(serial) for serial in INVENTORY], complete=True, now=T0)
    for serial, (fields, written) in INVENTORY.items():
        if written is None:
            continue
        body = {**WRITTEN_BASE, "name": f"name-{serial}", **written}
        body.update({k: fields[k] for k in ("type_id", "org_id") if k in fields})
        if "type_id" in body:
            body["type"] = body.pop("type_id")
        if "org_id" in body:
            body["organization"] = body.pop("org_id")
        if "name" in fields:
            body["name"] = fields["name"]
        store.record_write(serial, "adopt", body, None, now=T0)
    # the listing as it is now: hand edits and all; detail-only fields not listed
    store.refresh_mirror([listed(serial) for serial in INVENTORY], complete=True, now=T0)
    csv = [
        *(rec(f"U{i}") for i in range(6)),
        rec("U-ID", device_type=3, organization=7),
        rec("U-DETAIL", **DETAIL),
        rec("U-UNLISTED-DETAIL", **DETAIL),
        rec("U-EMPTY", location=""),
        rec("U-SILENT", location=None),
        rec("U-UNICODE", name="Zürich-1", organization="Zürich AG"),
        rec("U-ROUTER", device_type="ISR4431"),
        rec("U-STATUS", status=True),
        rec("U-IGNORED", firmware_version="2.0"),
        rec("CHANGED", location="dc2"),
        rec("NOT-LISTED"),
        rec("CHANGED-IP", ip_address="10.0.0.2"),
        rec("CHANGED-DETAIL", **{**DETAIL, "description": "core"}),
        rec("HAND", location="dc3"),
        rec("KEPT", location="dc1"),
        rec("UNWANTED", wanted=False),
        rec("UNWANTED-NOW", wanted=False),
        rec("DELETE-ROW", action="delete"),
        rec("CLEARED", location=""),
        rec("BACK"),
        rec("TWO-SOURCES", location="dc1"),
        rec("TWO-SOURCES-SAME"),
        rec("TWO-RECORDS"),
        replace(rec("TWO-RECORDS", location="dc5"), origin="csv:TWO-RECORDS:2"),
        rec("Case-A", extra=((CASE_COLLISION, "CASE-A"),)),
        rec("CASE-A", extra=((CASE_COLLISION, "Case-A"),)),
        rec("UNMANAGED", location="dc4"),
        rec("UNMANAGED-SAME"),
        rec("UNMAPPED", device_type="no-such-model"),
        rec("NEW", location="dc6"),
    ]
    store.store_batch("csv", "snapshot", "a.csv", csv, now=T0)
    netbox = [rec("TWO-SOURCES", "netbox", location="dc8"), rec("TWO-SOURCES-SAME", "netbox")]
    store.store_batch("netbox", "snapshot", "netbox", netbox, now=T0)
    # one planning run, released: the orphan gets a tombstone, the hand edit a conflict
    # that a person keeps, and BACK (listed by no source then) its tombstone
    earlier = {"UNWANTED-NOW": rec("UNWANTED-NOW"), "DELETE-ROW": rec("DELETE-ROW")}
    without_back = [earlier.get(r.serial_number, r) for r in csv if r.serial_number != "BACK"]
    store.store_batch("csv", "snapshot", "b.csv", without_back, now=T0)
    run = store.begin_run("test", "first", now=T0)
    first = plan(store.load_candidates(store.candidate_serials(run)), DEFAULT, *inputs(store))
    store.record_plan(run, first, held=False, now=T0)
    conflict = store.take_conflict("KEPT", "location")
    assert conflict is not None
    store.keep_inventory_value(conflict, by="test", now=T0)
    store.store_batch("csv", "snapshot", "c.csv", csv, now=T0 + timedelta(minutes=1))


DEFAULT = Policy.default(orphan_grace_runs=3, orphan_grace_seconds=0)
POLICIES = {
    "default": Policy.default(orphan_grace_runs=0, orphan_grace_seconds=0),
    "adopting": Policy.default(adopt=True, type_map={"no-such-model": 4}),
    "ignoring": Policy.default(
        fields={
            "location": FieldPolicy("ignore"),
            "firmware_version": FieldPolicy("create_only"),
            "status": FieldPolicy("managed"),
            "description": FieldPolicy("managed", on_manual_edit="overwrite"),
        },
        organization_map={"Zürich AG": 7},
    ),
}


def inputs(store: Store) -> tuple[Catalogue, PlanContext]:
    context = PlanContext(
        now=T0 + timedelta(hours=1),
        owned_total=store.owned_total(),
        source_counts=store.source_counts(),
    )
    return store.load_catalogue(), context


def both_plans(store: Store, policy: Policy) -> tuple[Plan, Plan, list[str], int]:
    """The plan of every candidate, and the plan of the candidates left unsettled."""
    catalogue, context = inputs(store)
    run = store.begin_run("test", policy.fingerprint(), now=T0)
    everything = plan(store.load_candidates(store.candidate_serials(run)), policy, *inputs(store))
    serials, settled = store.settled_candidates(run, settle_fields(policy, catalogue))
    fast = plan(
        store.load_candidates(serials), policy, catalogue, context, settled=settled, ordered=True
    )
    return everything, fast, list(serials), settled


def change_rows(store: Store, run: int) -> list[tuple[Any, ...]]:
    return sorted(
        (c.serial_number, c.operation, repr(c.changes), c.reason, c.sources, c.origins, c.status)
        for c in store.changes(run_id=run, limit=1000)
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh store URLs, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a' / 'syncd.db'}", f"sqlite:///{tmp_path / 'b' / 'syncd.db'}"
        return
    server = pg.require_server()
    names = [server.create_database(), server.create_database()]
    try:
        yield server.url(names[0]), server.url(names[1])
    finally:
        for name in names:
            with contextlib.suppress(psycopg.Error):
                server.drop_database(name)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_settled_candidates_give_the_engines_plan(store: Store, name: str) -> None:
    populate(store)
    policy = POLICIES[name]

    everything, fast, serials, settled = both_plans(store, policy)

    assert fast.operations == everything.operations
    assert fast.counts == everything.counts
    assert fast.tombstones == everything.tombstones
    assert (fast.held, fast.hold_reasons) == (everything.held, everything.hold_reasons)
    # not vacuous: the plain unchanged serials were settled in the store, and every
    # serial the engine had something to say about was left to it
    assert settled >= 6
    assert not {f"U{i}" for i in range(6)} & set(serials)
    assert {op.serial_number for op in everything.operations} <= set(serials)
    assert everything.counts["unchanged"] >= settled


def test_every_unchanged_shape_is_settled(store: Store) -> None:
    """What the SQL can decide exactly, it settles (under the default policy): the
    detail-only fallback, "" against null, silence, ids, JSON spelled differently."""
    populate(store)
    policy = POLICIES["default"]

    everything, _, serials, _ = both_plans(store, policy)

    assert {op.serial_number for op in everything.operations} >= {"CHANGED", "HAND", "NEW"}
    settled_shapes = {
        "U-ID",
        "U-DETAIL",
        "U-UNLISTED-DETAIL",
        "U-EMPTY",
        "U-SILENT",
        "U-UNICODE",
        "U-ROUTER",
        "U-STATUS",
    }
    assert not settled_shapes & set(serials)
    for left in (
        "KEPT",
        "BACK",
        "TWO-SOURCES-SAME",
        "Case-A",
        "UNMANAGED-SAME",
        "ORPHAN",
        "FOREIGN",
    ):
        assert left in serials


def store_state(store: Store, policy: Policy) -> dict[str, Any]:
    """What recording a plan leaves behind, beyond its own change rows: every change's
    status (superseded ones included), the open conflicts, and what the next run under
    the same policy would plan (the hashes marked planned)."""
    changes = sorted(
        (c.run_id, c.serial_number, c.operation, c.status, c.error)
        for c in store.changes(limit=1000)
    )
    conflicts = sorted(
        (c.serial_number, c.field, repr(c.inventory_value), repr(c.source_value))
        for c in store.open_conflicts()
    )
    run = store.begin_run("next", policy.fingerprint(), now=T0)
    try:
        following = sorted(store.candidate_serials(run))
    finally:
        store.finish_run(run, "done", now=T0)
    return {"changes": changes, "conflicts": conflicts, "next_candidates": following}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_recorded_change_rows_are_the_same(two_urls: tuple[str, str], name: str) -> None:
    """Recorded through the plan writer, as a run records a plan, in two stores with
    the same contents: the change rows of the settled path are the full path's, and so
    is everything recording leaves behind (a settled serial has no candidate row, so
    this pins that it needed none): older changes superseded, open conflicts cleared,
    the hashes marked planned."""
    policy = POLICIES[name]
    rows = []
    for url, settle in zip(two_urls, (False, True), strict=True):
        with Store.open(url) as store:
            populate(store)
            catalogue, context = inputs(store)
            run = store.begin_run("test", policy.fingerprint(), now=T0)
            fields = settle_fields(policy, catalogue) if settle else None
            serials, settled = store.settled_candidates(run, fields)
            assert (settled > 0) == settle
            with store.plan_writer(run) as writer:
                result = plan(
                    store.load_candidates(serials),
                    policy,
                    catalogue,
                    context,
                    sink=writer.add,
                    settled=settled,
                )
                summary = writer.record(result, now=T0)
            state = store_state(store, policy)
            rows.append(
                (change_rows(store, run), summary["counts"], summary["superseded"], *state.items())
            )
    assert rows[0] == rows[1]
    assert len(rows[0][0]) >= 5
    if name == "ignoring":
        # not vacuous: with the location ignored, a serial whose location update still
        # waits (CHANGED) and one in conflict over it (HAND) are unchanged now; the
        # full re-plan supersedes the one and clears the other
        _, _, superseded, (_, changes), (_, conflicts), _ = rows[1]
        assert superseded > 0
        assert ("CHANGED", "update", "skipped") in {(c[1], c[2], c[3]) for c in changes}
        assert "HAND" not in {c[0] for c in conflicts}


def test_a_serial_with_a_change_on_its_way_is_not_settled(store: Store) -> None:
    """A serial whose hashes are planned but whose change still waits, or whose conflict
    is open, is the engine's to plan even when the test would settle it: recording the
    plan must supersede the change and clear the conflict."""
    populate(store)
    policy = POLICIES["ignoring"]
    catalogue = store.load_catalogue()
    run = store.begin_run("test", policy.fingerprint(), now=T0)
    serials, _ = store.settled_candidates(run, settle_fields(policy, catalogue))
    waiting = {c.serial_number for c in store.changes(status="pending", limit=1000)}
    assert {"CHANGED", "HAND"} <= set(serials)
    assert waiting <= set(serials)
    assert {c.serial_number for c in store.open_conflicts()} <= set(serials)


def test_a_field_with_its_own_sources_turns_settling_off() -> None:
    """With one record, such a field may still not take its value: the engine decides."""
    policy = Policy.default(fields={"location": FieldPolicy("managed", sources=("netbox",))})
    assert settle_fields(policy, Catalogue()) is None
    assert settle_fields(Policy.default(), Catalogue()) is not None
