"""The mirror of the inventory, the learned catalogue, and syncd's own writes.

Every test runs on SQLite and on a real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.engine import MirrorEntry, OrgInfo, Plan, Tombstone, TypeInfo
from syncd.inventory.models import Device
from syncd.store import Store
from tests import pg

db_url = pg.db_url

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def device(serial: str, *, detail: bool = False, **fields: Any) -> Device:
    """A device as the API answers: list shape, or detail shape with ``detail``."""
    kind: dict[str, Any] = {"id": 3, "name": "switch", "model": "C9300"}
    org: dict[str, Any] = {"id": 7, "name": "Acme"}
    if detail:
        kind["manufacturer"] = "Cisco"
        org["code"] = "ACME"
    body: dict[str, Any] = {
        "serial_number": serial,
        "name": f"name-{serial}",
        "type": kind,
        "organization": org,
        "status": True,
        "ip_address": "10.0.0.1",
        "location": "dc1",
        **fields,
    }
    return Device.model_validate(body)


def mirror_of(store: Store, serial: str) -> MirrorEntry | None:
    (candidate,) = store.load_candidates([serial])
    return candidate.mirror


def candidates(store: Store, fingerprint: str = "fp") -> list[str]:
    """One planning cycle that plans nothing; returns what it had to look at."""
    run = store.begin_run("test", fingerprint)
    serials = store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[]))
    return serials


def test_refresh_records_values_in_write_form(store: Store) -> None:
    stats = store.refresh_mirror([device("A"), device("B", location=None)], complete=True)

    assert (stats.listed, stats.new, stats.changed) == (2, 2, 0)
    entry = mirror_of(store, "A")
    assert entry == MirrorEntry(
        serial_number="A",
        values={
            "name": "name-A",
            "type": 3,
            "organization": 7,
            "status": True,
            "ip_address": "10.0.0.1",
            "location": "dc1",
        },
        written={},
        ownership="unmanaged",
    )
    b = mirror_of(store, "B")
    assert b is not None
    assert b.values["location"] is None


def test_changed_inventory_value_makes_the_serial_a_candidate(store: Store) -> None:
    store.refresh_mirror([device("A"), device("B")], complete=True)
    assert candidates(store) == ["A", "B"]

    stats = store.refresh_mirror([device("A"), device("B", name="edited")], complete=True)

    assert (stats.changed, stats.unchanged) == (1, 1)
    assert candidates(store) == ["B"]
    assert candidates(store) == []


def test_complete_listing_marks_missing_devices_absent(store: Store) -> None:
    store.refresh_mirror([device("A"), device("B"), device("C")], complete=True)
    candidates(store)

    stats = store.refresh_mirror([device("A")], complete=True)

    assert stats.gone == 2
    assert mirror_of(store, "B") is None
    assert candidates(store) == ["B", "C"]  # a device deleted by hand is looked at again

    store.refresh_mirror([device("A"), device("B")], complete=True)
    assert mirror_of(store, "B") is not None


def test_partial_listing_never_marks_absence(store: Store) -> None:
    store.refresh_mirror([device("A"), device("B")], complete=True)

    stats = store.refresh_mirror([device("A")], complete=False)

    assert stats.gone == 0
    assert mirror_of(store, "B") is not None


def test_refresh_streams_a_lazy_iterator_and_tolerates_repeats(store: Store) -> None:
    def pages() -> Iterator[Device]:
        for i in range(12_000):
            yield device(f"S{i:05d}")
        yield device("S00001")  # a page shifted under the client: seen twice

    stats = store.refresh_mirror(pages(), complete=True)

    assert (stats.listed, stats.new) == (12_000, 12_000)
    assert store.owned_total() == 0


def test_catalogue_learns_without_forgetting_detail_only_attributes(store: Store) -> None:
    store.refresh_mirror([device("A", detail=True)], complete=False)
    store.refresh_mirror([device("B")], complete=False)  # list shape: no manufacturer, no code

    catalogue = store.load_catalogue()
    assert catalogue.types == {3: TypeInfo(name="switch", model="C9300", manufacturer="Cisco")}
    assert catalogue.organizations == {7: OrgInfo(name="Acme", code="ACME")}

    renamed = device("C", organization={"id": 7, "name": "Acme Corp"})
    other = device("D", type={"id": 4, "model": "MX"}, organization={"id": 9, "name": "Other"})
    store.refresh_mirror([renamed, other], complete=False)
    catalogue = store.load_catalogue()
    assert catalogue.organizations[7] == OrgInfo(name="Acme Corp", code="ACME")
    assert catalogue.types[4] == TypeInfo(name=None, model="MX", manufacturer=None)


def test_created_device_is_owned_and_not_replanned(store: Store) -> None:
    body = {"name": "edge-1", "type": 3, "organization": 7, "description": "rack 4"}
    sent = {"serial_number": "N1", **body}  # a create body carries the serial
    answer = device("N1", name="edge-1")  # write answers may omit detail-only fields
    assert candidates(store) == []  # the first run sets the policy fingerprint

    store.record_write("N1", "create", sent, answer, now=T0)

    entry = mirror_of(store, "N1")
    assert entry is not None
    assert entry.ownership == "created"
    assert entry.written == body
    assert entry.values["description"] == "rack 4"  # known from what was sent
    assert entry.values["ip_address"] == "10.0.0.1"  # the server's answer wins where it speaks
    assert store.owned_total() == 1
    assert candidates(store) == []  # our own write is not mistaken for a hand edit
    store.refresh_mirror([answer], complete=True)
    assert candidates(store) == []  # nor is reading back what we wrote


def test_hand_edit_after_our_write_is_visible_three_ways(store: Store) -> None:
    store.record_write("N1", "create", {"name": "edge-1", "type": 3, "organization": 7}, None)
    assert candidates(store) == ["N1"]  # the first run looks at everything
    assert candidates(store) == []
    store.refresh_mirror([device("N1", name="edited-by-hand")], complete=True)

    assert candidates(store) == ["N1"]
    entry = mirror_of(store, "N1")
    assert entry is not None
    assert entry.values["name"] == "edited-by-hand"
    assert entry.written["name"] == "edge-1"


def test_detail_only_values_survive_a_list_refresh(store: Store) -> None:
    store.record_write("A", "create", {"name": "a", "type": 3, "organization": 7}, None)
    store.refresh_mirror(
        [device("A", detail=True, mac_address="aa:bb:cc:dd:ee:ff")], complete=False
    )
    candidates(store)

    stats = store.refresh_mirror([device("A")], complete=True)  # list shape: no mac

    entry = mirror_of(store, "A")
    assert entry is not None
    assert entry.values["mac_address"] == "aa:bb:cc:dd:ee:ff"
    assert stats.changed == 0


def test_update_keeps_ownership_and_adopt_takes_it(store: Store) -> None:
    store.refresh_mirror([device("U"), device("V")], complete=True)

    store.record_write("U", "update", {"location": "dc2"}, None)
    store.record_write("V", "adopt", {"location": "dc3"}, device("V", location="dc3"))

    u, v = mirror_of(store, "U"), mirror_of(store, "V")
    assert u is not None
    assert v is not None
    assert (u.ownership, u.values["location"], u.written) == (
        "unmanaged",
        "dc2",
        {"location": "dc2"},
    )
    assert (v.ownership, v.values["location"]) == ("adopted", "dc3")
    assert store.owned_total() == 1


def test_delete_marks_absent_and_clears_the_tombstone(store: Store) -> None:
    store.record_write("D", "create", {"name": "d", "type": 3, "organization": 7}, None)
    run = store.begin_run("test", "fp")
    store.candidate_serials(run)
    store.record_plan(run, Plan(operations=[], tombstones={"D": Tombstone(T0, 3)}))
    (candidate,) = store.load_candidates(["D"])
    assert candidate.tombstone == Tombstone(T0, 3)

    store.record_write("D", "delete", {}, None)

    (candidate,) = store.load_candidates(["D"])
    assert (candidate.mirror, candidate.tombstone) == (None, None)
    assert store.owned_total() == 0
    assert candidates(store) == []  # deleted, untombstoned, unwanted: nothing left to do
