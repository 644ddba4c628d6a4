"""A mirror refresh compares hashes, and reads stored values only for what changed.

The fast path (an unchanged listed device costs a hash and a compare) must leave the
mirror exactly as the full merge would: the same values, the same hashes, detail-only
fields carried over. Every test runs on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from syncd.inventory.models import Device
from syncd.listed import ListedDevice
from syncd.store import Store, mirror, values_hash
from syncd.store.tables import MIRROR
from tests import pg
from tests.test_store_mirror import T0, candidates, device, mirror_of

db_url = pg.db_url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def _statements(store: Store) -> list[str]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split()))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    return seen


def test_an_unchanged_listing_reads_no_stored_values(store: Store) -> None:
    # syncd wrote the detail-only fields; the list pages never show them
    store.refresh_mirror(
        [device("A", detail=True, description="rack 4"), device("B")], complete=True
    )
    store.record_write("A", "update", {"mac_address": "00:1b:54:aa:01:02"}, None, now=T0)
    candidates(store)
    statements = _statements(store)
    stats = store.refresh_mirror([device("A"), device("B")], complete=True, now=T0)
    assert (stats.new, stats.changed, stats.unchanged, stats.gone) == (0, 0, 2, 0)
    reads = [s for s in statements if s.startswith("SELECT") and re.search(r"\bvalues\b", s)]
    assert reads == [], reads
    assert candidates(store) == []
    entry = mirror_of(store, "A")
    assert entry is not None
    assert entry.values["description"] == "rack 4"
    assert entry.values["mac_address"] == "00:1b:54:aa:01:02"


def test_a_changed_listed_field_keeps_the_detail_only_ones(store: Store) -> None:
    store.refresh_mirror([device("A", detail=True, description="rack 4")], complete=True)
    candidates(store)
    stats = store.refresh_mirror([device("A", location="dc9")], complete=True, now=T0)
    assert (stats.changed, stats.unchanged) == (1, 0)
    entry = mirror_of(store, "A")
    assert entry is not None
    assert (entry.values["location"], entry.values["description"]) == ("dc9", "rack 4")
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.select(MIRROR.c.values_hash).where(MIRROR.c.serial_number == "A")
        ).scalar_one()
    assert stored == values_hash(dict(entry.values))  # as the full merge computes it
    assert candidates(store) == ["A"]


def test_a_device_back_after_absence_is_rewritten(store: Store) -> None:
    store.refresh_mirror([device("A"), device("B")], complete=True)
    store.refresh_mirror([device("B")], complete=True, now=T0)
    assert mirror_of(store, "A") is None
    stats = store.refresh_mirror([device("A"), device("B")], complete=True, now=T0)
    assert (stats.changed, stats.unchanged) == (1, 1)
    assert mirror_of(store, "A") is not None


# -- the stored keys (``mirror.ListedKeys``): an unchanged device costs no SQL ---------------


def _probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The serials the refreshes from now on check in SQL (``mirror._differing``)."""
    probed: list[str] = []
    lookup = mirror._differing

    def record(conn: Any, dialect: str, probe: list[tuple[str, str, str | None]]) -> Any:
        probed.extend(serial for serial, _half, _born in probe)
        return lookup(conn, dialect, probe)

    monkeypatch.setattr(mirror, "_differing", record)
    return probed


BORN = {
    "A": "2026-01-05T09:30:00Z",
    "B": "2026-01-05T09:30:00.000001Z",  # a microsecond: the stored text must say it
    "C": "2026-01-05T11:30:00.250000+02:00",  # another zone: compared in UTC
}


def test_an_unchanged_listing_is_settled_without_a_lookup(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = [device(s, created_at=born) for s, born in BORN.items()] + [device("D")]
    store.refresh_mirror(listing, complete=True, now=T0)
    probed = _probes(monkeypatch)
    stats = store.refresh_mirror(listing, complete=True, now=T0)
    assert (stats.new, stats.changed, stats.unchanged, stats.gone) == (0, 0, 4, 0)
    assert probed == []  # on both backends the stored keys read as the listing's

    edited = [
        device("A", created_at=BORN["A"], location="dc9"),  # a hand edit
        device("B", created_at="2026-01-05T09:30:00.000002Z"),  # made again
        device("C"),  # listed without its creation time: SQL decides
        device("D", created_at=BORN["A"]),  # its creation time, known now
        device("E"),  # new
    ]
    stats = store.refresh_mirror(edited, complete=True, now=T0)
    assert sorted(probed) == ["A", "B", "C", "D", "E"]
    assert (stats.new, stats.changed, stats.unchanged) == (1, 3, 1)  # C: unchanged in SQL
    probed.clear()
    stats = store.refresh_mirror(edited[:2] + edited[3:], complete=False, now=T0)
    assert (probed, stats.unchanged) == ([], 4)


def test_the_keys_are_read_a_chunk_at_a_time(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = [device(f"S{i:02d}", created_at=BORN["B"]) for i in range(7)]
    store.refresh_mirror(listing, complete=True, now=T0)
    store.refresh_mirror(listing[:6], complete=True, now=T0)  # S06 absent: not a key
    monkeypatch.setattr(mirror, "KEYS_CHUNK", 2)
    probed = _probes(monkeypatch)
    stats = store.refresh_mirror(listing, complete=True, now=T0)
    assert probed == ["S06"]
    assert (stats.changed, stats.unchanged) == (1, 6)


def test_serials_holding_a_separator_take_the_sql_path(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # \x1f joins a key's parts and \x1e the keys: such a serial is never a key
    odd = ["A\x1fB", "C\x1eD", "E"]
    listing = [device(s, created_at=BORN["A"]) for s in odd]
    store.refresh_mirror(listing, complete=True, now=T0)
    probed = _probes(monkeypatch)
    stats = store.refresh_mirror(listing, complete=True, now=T0)
    assert (sorted(probed), stats.unchanged) == (["A\x1fB", "C\x1eD"], 3)
    stats = store.refresh_mirror([device(s, location="dc9") for s in odd], complete=True)
    assert stats.changed == 3
    for serial in odd:
        entry = mirror_of(store, serial)
        assert entry is not None, serial
        assert entry.values["location"] == "dc9", serial


def test_a_page_listed_before_syncds_own_write_does_not_undo_it(store: Store) -> None:
    """The keys are the mirror as the refresh began: a device listed as it was then is
    left as syncd's write, landing meanwhile, made it (the page may predate the write),
    instead of going back to the old values, which would read as a hand edit."""
    store.refresh_mirror([device("A", created_at=BORN["A"])], complete=True, now=T0)

    def listing() -> Iterator[Device]:
        store.record_write("A", "update", {"location": "dc9"}, None, now=T0)
        yield device("A", created_at=BORN["A"])  # the page as it was read before

    stats = store.refresh_mirror(listing(), complete=True, now=T0)
    assert stats.unchanged == 1
    entry = mirror_of(store, "A")
    assert entry is not None
    assert entry.values["location"] == "dc9"
    # the next listing shows what the inventory holds now, and is compared with that
    stats = store.refresh_mirror([device("A", created_at=BORN["A"])], complete=True, now=T0)
    assert stats.changed == 1
    entry = mirror_of(store, "A")
    assert entry is not None
    assert entry.values["location"] == "dc1"


def test_a_refresh_leaves_the_listed_rows_as_they_were(store: Store) -> None:
    """A listed row's values are hashed in place, not copied: merging the detail-only
    fields of a changed device must not write them into the row it was given."""
    store.refresh_mirror([device("A", detail=True, description="rack 4")], complete=True)
    rows = [ListedDevice.of(device("A", location="dc9")), ListedDevice.of(device("B"))]
    before = [dict(row.listed_values()) for row in rows]
    stats = store.refresh_mirror(rows, complete=True, now=T0)
    assert (stats.new, stats.changed) == (1, 1)
    assert [row.listed_values() for row in rows] == before
    entry = mirror_of(store, "A")
    assert entry is not None
    assert (entry.values["location"], entry.values["description"]) == ("dc9", "rack 4")
