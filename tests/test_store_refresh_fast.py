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

from syncd.store import Store, values_hash
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
