"""A refresh from plain listed rows leaves the mirror as one from ``Device`` objects does,
with the verdicts the per-row rules give.

The listing's fast path (plain rows, ``Listing.rows()``) and its slow one (a pydantic
``Device`` per row) are fed to two stores, listing after listing: new devices, hand
edits, a device made again by someone else (owned: disowned; not owned: only its
creation time moves), an absence, detail-only fields in a row, another writing of the
same instant, malformed rows. After each, both stores must hold the same mirror, row
for row and column for column, and report the same counts; and the counts and the
disowned and absent serials must be what the per-row rules (written out below, from the
mirror as it stood before the refresh) say. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from syncd.engine import DETAIL_ONLY
from syncd.inventory import Device
from syncd.store import MirrorStats, Store, values_hash
from syncd.store.rows import part_hash
from syncd.store.tables import MIRROR, TOMBSTONE
from tests import pg
from tests.client_support import list_row, mock_client

db_url = pg.db_url

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two empty stores of the same backend: one fed plain rows, one ``Device`` objects."""
    if db_url.startswith("sqlite"):
        with Store.open(db_url) as fast, Store.open(db_url.replace(".db", "-slow.db")) as slow:
            yield fast, slow
        return
    server = pg.require_server()
    name = server.create_database()
    try:
        with Store.open(db_url) as fast, Store.open(server.url(name)) as slow:
            yield fast, slow
    finally:
        server.drop_database(name)


def _listing(rows: list[Any], *, plain: bool) -> tuple[list[Any], bool]:
    def handle(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        return httpx.Response(
            200, json={"count": len(rows), "results": rows[offset : offset + limit]}
        )

    with mock_client(handle, page_size=3) as client:
        listing = client.list_inventory()
        devices = list(listing.rows() if plain else listing)
        return devices, listing.complete


def _mirror(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(MIRROR).order_by(MIRROR.c.serial_number)).mappings()
        return [dict(row) for row in rows]


def _tombstones(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(sa.select(TOMBSTONE.c.serial_number)).scalars())


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _expected(
    before: list[dict[str, Any]], devices: list[Device], complete: bool
) -> tuple[MirrorStats, set[str], set[str]]:
    """The per-row rules of a refresh: counts, disowned serials, absent serials."""
    stored = {row["serial_number"]: row for row in before}
    new = changed = 0
    disowned: set[str] = set()
    for device in devices:
        listed = device.writable_values()
        born = _as_utc(device.created_at)
        row = stored.get(device.serial_number)
        if row is None:
            new += 1
            continue
        known = row["device_created_at"]
        if row["ownership"] != "unmanaged" and known and born and known != born:
            disowned.add(device.serial_number)
        if (
            row["present"]
            and DETAIL_ONLY.isdisjoint(listed)
            and row["values_hash"][:16] == part_hash(listed)
            and (born is None or born == known)
        ):
            continue
        merged = dict(listed)
        if row["present"]:
            for name in DETAIL_ONLY:
                if name not in merged and name in row["values"]:
                    merged[name] = row["values"][name]
        if (
            values_hash(merged) != row["values_hash"]
            or not row["present"]
            or (born is not None and born != known)
        ):
            changed += 1
    listed_serials = {d.serial_number for d in devices}
    gone = {s for s, row in stored.items() if row["present"] and s not in listed_serials}
    if not complete:
        gone = set()
    stats = MirrorStats(
        listed=len(devices),
        new=new,
        changed=changed,
        unchanged=len(devices) - new - changed,
        gone=len(gone),
    )
    return stats, disowned, gone


def _refresh_both(
    stores: tuple[Store, Store], rows: list[Any], now: datetime
) -> tuple[MirrorStats, bool]:
    fast, slow = stores
    before = _mirror(slow)
    plain, plain_complete = _listing(rows, plain=True)
    devices, complete = _listing(rows, plain=False)
    assert plain_complete == complete
    fast_stats = fast.refresh_mirror(plain, complete=complete, now=now)
    slow_stats = slow.refresh_mirror(devices, complete=complete, now=now)
    after = _mirror(slow)
    assert _mirror(fast) == after
    assert _tombstones(fast) == _tombstones(slow)
    assert fast_stats == slow_stats
    stats, disowned, gone = _expected(before, devices, complete)
    assert fast_stats == stats
    by_serial = {row["serial_number"]: row for row in after}
    for serial in disowned:
        assert by_serial[serial]["ownership"] == "unmanaged", serial
    for serial in gone:
        assert not by_serial[serial]["present"], serial
    return fast_stats, complete


def _own(stores: tuple[Store, Store], serial: str, born: datetime) -> None:
    for store in stores:
        store.record_write(serial, "adopt", {"location": "dc1"}, None, now=T0)
        with store.engine.begin() as conn:
            conn.execute(
                MIRROR.update()
                .where(MIRROR.c.serial_number == serial)
                .values(device_created_at=born)
            )


def test_the_fast_path_gives_the_slow_paths_mirror_and_the_rules_verdicts(
    stores: tuple[Store, Store],
) -> None:
    born = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    first = [list_row(s) for s in "ABCDEFGH"] + [
        list_row("I", created_at=None),
        list_row("J", created_at="2026-01-05T09:30:00.000001Z"),
    ]
    stats, complete = _refresh_both(stores, first, T0)
    assert (stats.new, complete) == (10, True)
    for serial in "CEG":
        _own(stores, serial, born)

    second = [
        list_row("A"),  # unchanged
        list_row("B", location="dc9"),  # a hand edit
        list_row("C", created_at="2026-03-01T08:00:00Z"),  # owned, made again: disowned
        list_row("D", created_at="2026-03-01T08:00:00Z"),  # not owned, made again
        # E: gone from the inventory
        list_row("F", mac_address="00:1b:54:aa:01:02"),  # a detail-only field in the row
        list_row("G", created_at="2026-01-05T11:30:00+02:00"),  # the same instant, owned
        list_row("H", status="true"),  # coerced by pydantic: the same values
        list_row("I"),  # its creation time, known now
        list_row("J", created_at="2026-01-05T09:30:00.000002Z"),  # a microsecond later
        list_row("K"),  # new
    ]
    stats, complete = _refresh_both(stores, second, T0 + timedelta(hours=1))
    assert complete
    assert (stats.new, stats.gone) == (1, 1)
    assert stats.changed >= 4  # B, C, D, J at least; the rules above pin the count

    third = [
        *second[:4],
        list_row("E"),  # back
        list_row("F", type=None),  # malformed: skipped, the listing is not complete
        *second[5:],
        "junk",
    ]
    stats, complete = _refresh_both(stores, third, T0 + timedelta(hours=2))
    assert not complete
    assert stats.gone == 0  # an incomplete listing never marks absence

    fourth = [list_row(s) for s in "ABCDGHIJK"]  # E and F gone, the rest unchanged
    stats, complete = _refresh_both(stores, fourth, T0 + timedelta(hours=3))
    assert complete
    assert stats.gone == 2
