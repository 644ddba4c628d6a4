"""The mirror of the inventory, and the type/organization catalogue learned from it.

``refresh`` is fed the client's lazy iterator over the list endpoint (plain
``ListedDevice`` rows, ``Listing.rows()``; any ``InventoryDevice`` will do) and works in
chunks. A device is compared by the hash of what was listed (the first half of
``values_hash``, over the fields a list page returns) and its creation time. As the
refresh starts, those of every present row are read from a narrow index into a sorted
array (``ListedKeys``), and each chunk is looked up there at once: an unchanged device
costs two hashes and no SQL, and is never written. The rest of a chunk goes to the
database in one statement, and only the rows that differ come back (new, absent,
changed, made again). Only the rows that changed have their stored values read (the
list shape lacks the detail-only fields, so those are kept from earlier reads or
writes) and written. When the listing was complete, every
present serial it did not return is marked absent: after the chunks every listed serial
is present, so the serials are read (and compared with the set of listed ones) only
when more rows are present than were listed.

The devices are anything of the ``InventoryDevice`` shape (``syncd.records``): the
store never imports the API client.

``record_write`` keeps the mirror true after syncd's own writes, so the next run
does not mistake them for hand edits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.engine import DETAIL_ONLY, Catalogue, OrgInfo, TypeInfo
from syncd.listed import ListedDevice, OrgRef, TypeRef, utc_text
from syncd.process import bulk_work
from syncd.records import API_FIELDS, InventoryDevice
from syncd.store.db import Database, in_values, upsert
from syncd.store.known import DigestSet
from syncd.store.planning import REPLAN
from syncd.store.rows import MirrorStats, part_hash, values_hash
from syncd.store.serials import SerialSet
from syncd.store.staging import CHUNK, iter_chunks
from syncd.store.tables import (
    CATALOGUE_ORGANIZATION,
    CATALOGUE_TYPE,
    MIRROR,
    STORE_META,
    TOMBSTONE,
)
from syncd.store.types import UTCDateTime

_WRITABLE = frozenset(API_FIELDS)


class CatalogueBuffer:
    """What a refresh learned about types and organizations; non-null wins."""

    def __init__(self) -> None:
        self.types: dict[int, dict[str, str | None]] = {}
        self.organizations: dict[int, dict[str, str | None]] = {}
        # What was learned already, as it was seen: a listing repeats a few dozen types
        # and organizations a million times, and each repeat costs one set lookup.
        self._seen: set[tuple[object, ...]] = set()

    def learn(self, device: InventoryDevice) -> None:
        kind, org = device.type, device.organization
        if type(kind) is TypeRef and type(org) is OrgRef:  # a listed row: plain tuples
            key: tuple[object, ...] = (kind, org)
        else:
            key = (kind.id, kind.name, kind.model, kind.manufacturer, org.id, org.name, org.code)
        if key in self._seen:
            return
        self._seen.add(key)
        known = self.types.setdefault(kind.id, {"name": None, "model": None, "manufacturer": None})
        for name, value in (("name", kind.name), ("model", kind.model)):
            if value is not None:
                known[name] = value
        if kind.manufacturer is not None:
            known["manufacturer"] = kind.manufacturer
        known = self.organizations.setdefault(org.id, {"name": None, "code": None})
        if org.name is not None:
            known["name"] = org.name
        if org.code is not None:
            known["code"] = org.code

    def save(self, conn: Connection, dialect: str, now: datetime) -> None:
        for table, items in (
            (CATALOGUE_TYPE, self.types),
            (CATALOGUE_ORGANIZATION, self.organizations),
        ):
            if not items:
                continue
            rows = [{"id": ident, **attrs, "seen_at": now} for ident, attrs in items.items()]
            stmt = upsert(dialect, table)
            attributes = [c.name for c in table.columns if c.name not in ("id", "seen_at")]
            # Never forget a known attribute: the list shape omits manufacturer and code.
            update: dict[str, Any] = {
                name: sa.func.coalesce(stmt.excluded[name], table.c[name]) for name in attributes
            }
            update["seen_at"] = stmt.excluded.seen_at
            conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update), rows)


def merged_values(device: InventoryDevice, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The device's writable values, keeping earlier detail-only values it lacks."""
    return _merged(device.writable_values(), previous)


@bulk_work()
def refresh(
    db: Database,
    devices: Iterable[InventoryDevice],
    *,
    complete: bool | Callable[[], bool],
    now: datetime,
) -> MirrorStats:
    """Upsert what the API listed; with ``complete``, mark every serial not listed absent."""
    catalogue = CatalogueBuffer()
    seen = SerialSet()  # a million serials: some 25 MB, not a set's 100 MB
    new = changed = 0
    with db.read() as conn:
        stored = ListedKeys.read(conn, db.dialect)
    with db.engine.connect() as conn:
        try:
            for chunk in iter_chunks(devices, CHUNK):
                by_serial: dict[str, tuple[InventoryDevice, dict[str, Any]]] = {}
                for device in chunk:
                    # a page shift may repeat one: the last listed wins; a listed row's
                    # values are not copied (``_changed_rows`` copies what it merges)
                    values = (
                        device.listed_values()
                        if type(device) is ListedDevice
                        else device.writable_values()
                    )
                    by_serial[device.serial_number] = (device, values)
                    catalogue.learn(device)
                seen.update(by_serial)
                probe = stored.differing(
                    [
                        (serial, _listed_half(values), _born_key(device))
                        for serial, (device, values) in by_serial.items()
                    ]
                )
                if not probe:
                    continue
                with db.transaction(conn, lock="exclusive"):
                    n_new, n_changed = _refresh_chunk(conn, db.dialect, by_serial, probe, now)
                new += n_new
                changed += n_changed
            with db.transaction(conn, lock="exclusive"):
                catalogue.save(conn, db.dialect, now)
                whole = complete() if callable(complete) else complete
                gone = _mark_absent(conn, db.dialect, seen, now) if whole else 0
                if whole:
                    stamp = upsert(db.dialect, STORE_META).values(
                        key=REFRESHED_AT, value=now.isoformat()
                    )
                    conn.execute(
                        stamp.on_conflict_do_update(
                            index_elements=["key"], set_={"value": stamp.excluded.value}
                        )
                    )
        finally:
            if conn.in_transaction():
                conn.rollback()
        db.shrink(conn)
    listed = len(seen)
    return MirrorStats(
        listed=listed, new=new, changed=changed, unchanged=listed - new - changed, gone=gone
    )


def _refresh_chunk(
    conn: Connection,
    dialect: str,
    devices: dict[str, tuple[InventoryDevice, dict[str, Any]]],
    probe: list[tuple[str, str, str | None]],
    now: datetime,
) -> tuple[int, int]:
    # The devices of ``probe`` (those ``ListedKeys`` did not find unchanged) are checked
    # in SQL: each serial goes in with the listed half of its hash and its creation time,
    # and only the rows that differ come back (new, absent, changed, made again).
    inserts: list[dict[str, Any]] = []
    changed: dict[str, tuple[dict[str, Any], datetime | None]] = {}
    existing: dict[str, tuple[str, bool, str, datetime | None]] = {}
    reborn: list[str] = []
    for serial, known, stored, present, ownership, stored_born in _differing(conn, dialect, probe):
        device, values = devices[serial]
        born = device.created_at
        if not known:
            inserts.append(_new_row(serial, values, now, born))
            continue
        existing[serial] = (stored, bool(present), ownership, _as_utc(stored_born))
        if _born_again(existing[serial][3], born, ownership):
            reborn.append(serial)
        changed[serial] = (values, born)
    updates = _changed_rows(conn, dialect, changed, existing)
    if inserts:
        conn.execute(MIRROR.insert(), inserts)
    if reborn:
        disown(conn, reborn, dialect)
    if updates:
        conn.execute(
            MIRROR.update()
            .where(MIRROR.c.serial_number == sa.bindparam("key"))
            .values(
                {
                    "values": sa.bindparam("new_values", type_=sa.JSON()),
                    "values_hash": sa.bindparam("new_hash"),
                    "present": True,
                    "first_seen_at": sa.func.coalesce(MIRROR.c.first_seen_at, now),
                    "last_seen_at": now,
                    "updated_at": now,
                    "device_created_at": sa.func.coalesce(
                        sa.bindparam("new_born", type_=UTCDateTime()),
                        MIRROR.c.device_created_at,
                    ),
                }
            ),
            updates,
        )
    return len(inserts), len(updates)


#: The listed half of a device that carries detail-only fields: matches no stored hash,
#: so such a device always takes the full merge (its detail values may have changed).
_NO_HALF = "-"

#: The listed devices of a chunk that are not unchanged: ``(serial, known, values_hash,
#: present, ownership, device_created_at)``, the stored columns null for a new serial. A
#: device is unchanged when it is present, the listed half of its hash is the stored
#: one, and it was made when the mirror says (or the listing does not say when).
_DIFFERING_SQLITE = """
SELECT l.serial_number, m.serial_number IS NOT NULL, m.values_hash, m.present,
       m.ownership, m.device_created_at
FROM (SELECT json_extract(value, '$[0]') AS serial_number,
             json_extract(value, '$[1]') AS half,
             json_extract(value, '$[2]') AS born
      FROM json_each(?)) AS l
LEFT JOIN mirror AS m ON m.serial_number = l.serial_number
WHERE NOT coalesce(m.present AND substr(m.values_hash, 1, 16) = l.half
                   AND (l.born IS NULL OR m.device_created_at = l.born), 0)
"""
_DIFFERING_POSTGRESQL = """
SELECT l.serial_number, m.serial_number IS NOT NULL, m.values_hash, m.present,
       m.ownership, m.device_created_at
FROM unnest(%s::text[], %s::text[], %s::timestamp[]) AS l(serial_number, half, born)
LEFT JOIN mirror AS m ON m.serial_number = l.serial_number
WHERE NOT coalesce(m.present AND substr(m.values_hash, 1, 16) = l.half
                   AND (l.born IS NULL OR m.device_created_at = l.born AT TIME ZONE 'UTC'), false)
"""


#: Present rows read per statement by ``ListedKeys.read``.
KEYS_CHUNK = 50_000

# One key per present mirror row: its serial, the listed half of its hash and its
# creation time as ``_born_key`` writes it ("" when unknown), joined by unit separators,
# the rows joined by record separators, ``KEYS_CHUNK`` rows per statement in the
# index's order (``ix_mirror_listed``: the narrow index, not the wide rows). A serial
# holding a separator is left out: it is never found, so it takes the SQL path.
_KEYS = {
    "sqlite": "SELECT group_concat(k, char(30)), count(*), max(serial_number) FROM ("
    "SELECT serial_number, serial_number || char(31) || substr(values_hash, 1, 16) "
    "|| char(31) || coalesce(device_created_at, '') AS k "
    "FROM mirror INDEXED BY ix_mirror_listed WHERE present AND serial_number > :after "
    "AND instr(serial_number, char(30)) = 0 AND instr(serial_number, char(31)) = 0 "
    "ORDER BY serial_number LIMIT :limit)",
    "postgresql": "SELECT string_agg(k, chr(30)), count(*), max(serial_number) FROM ("
    "SELECT serial_number, serial_number || chr(31) || substr(values_hash, 1, 16) "
    "|| chr(31) || coalesce(to_char(device_created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD HH24:MI:SS.US'), '') AS k "
    "FROM mirror WHERE present AND serial_number > :after "
    "AND strpos(serial_number, chr(30)) = 0 AND strpos(serial_number, chr(31)) = 0 "
    "ORDER BY serial_number LIMIT :limit) AS present_rows",
}


def _key_digests(keys: list[str]) -> bytes:
    """The 16-byte BLAKE2b digest of each key (``serial\\x1fhalf\\x1fcreated``), joined:
    the one form both sides of ``ListedKeys`` are compared in."""
    digest = hashlib.blake2b
    return b"".join([digest(key.encode(), digest_size=16).digest() for key in keys])


class ListedKeys:
    """What a refresh compares, for every present mirror row, read once as it starts.

    A listed device is unchanged when its serial is present with the listed half of its
    hash, and with its creation time (or the listing does not say): the test
    ``_differing`` makes in SQL, one lookup per device. Here each present row's
    ``serial, half, creation time`` is one 16-byte digest in a sorted array
    (``DigestSet``), and a chunk of listed devices is looked up in one vectorised
    search: a device found there is unchanged, costs no SQL and is not written. Every
    other one (new, changed, absent, made again, listed without its creation time, or
    missed by the search) takes the SQL path, which decides exactly as before.

    The digests are the mirror as the refresh began. A row syncd changes while the
    listing runs (its own write, a delete) is compared with what it held then: a device
    listed as it was is left as syncd's write made it (the page may predate the write),
    and a hand edit that puts back exactly the values held when the refresh began is
    seen by the next refresh.
    """

    __slots__ = ("_digests",)

    def __init__(self, digests: DigestSet) -> None:
        self._digests = digests

    @classmethod
    def read(cls, conn: Connection, dialect: str) -> ListedKeys:
        statement = sa.text(_KEYS[dialect])
        parts: list[bytes] = []
        after = ""
        while True:
            joined, count, last = conn.execute(
                statement, {"after": after, "limit": KEYS_CHUNK}
            ).one()
            if count:
                parts.append(_key_digests(joined.split("\x1e")))
            if count < KEYS_CHUNK:
                break
            after = last
        return cls(DigestSet.of(b"".join(parts)))

    def __len__(self) -> int:
        return len(self._digests)

    def differing(
        self, probe: list[tuple[str, str, str | None]]
    ) -> list[tuple[str, str, str | None]]:
        """The rows of ``probe`` (serial, listed half, creation time as UTC text) not
        found unchanged: the ones to check in SQL."""
        if not probe or not len(self._digests):
            return probe
        keys = [f"{serial}\x1f{half}\x1f{born or ''}" for serial, half, born in probe]
        found, _ = self._digests.find(_key_digests(keys))
        if found.all():
            return []
        return [row for row, hit in zip(probe, found.tolist(), strict=True) if not hit]


def _differing(
    conn: Connection, dialect: str, probe: list[tuple[str, str, str | None]]
) -> list[tuple[Any, ...]]:
    """The rows of ``probe`` (serial, listed half, creation time as UTC text) the mirror
    does not hold unchanged, through the driver: one statement per chunk (on PostgreSQL
    three arrays of text, which the driver passes as they are)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if dialect == "postgresql":
            serials, halves, born = (list(column) for column in zip(*probe, strict=True))
            cursor.execute(_DIFFERING_POSTGRESQL, (serials, halves, born))
        else:
            cursor.execute(_DIFFERING_SQLITE, (orjson.dumps(probe).decode(),))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _listed_half(values: dict[str, Any]) -> str:
    """The first half of ``values_hash`` for what a list page gave."""
    return _NO_HALF if not DETAIL_ONLY.isdisjoint(values) else part_hash(values)


def _born_key(device: InventoryDevice) -> str | None:
    """A device's creation time as UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``: the form
    SQLite's column holds, and PostgreSQL reads as UTC), so SQL compares it; ``None``
    when the answer did not say."""
    if type(device) is ListedDevice:
        return device.created_utc
    return utc_text(device.created_at)


def _born_again(known: datetime | None, listed: datetime | None, ownership: str) -> bool:
    """True when a device syncd owns is listed with another creation time than the one
    it knew: it was deleted and made again (by someone else), so it is not syncd's."""
    if ownership == "unmanaged" or known is None or listed is None:
        return False
    return _as_utc(known) != _as_utc(listed)


def disown(conn: Connection, serials: list[str], dialect: str) -> None:
    """Serials whose device was made again by someone else: syncd neither owns them nor
    remembers what it wrote there, their tombstones go, and they are planned afresh
    (adopted, or left alone with ``adopt = false``)."""
    conn.execute(
        MIRROR.update()
        .where(in_values(MIRROR.c.serial_number, serials, dialect))
        .values(ownership="unmanaged", written={}, synced_values_hash=REPLAN)
    )
    conn.execute(TOMBSTONE.delete().where(in_values(TOMBSTONE.c.serial_number, serials, dialect)))


def _new_row(
    serial: str, values: dict[str, Any], now: datetime, born: datetime | None
) -> dict[str, Any]:
    return {
        "serial_number": serial,
        "values": values,
        "values_hash": values_hash(values),
        "written": {},
        "ownership": "unmanaged",
        "present": True,
        "synced_values_hash": "",
        "first_seen_at": now,
        "last_seen_at": now,
        "updated_at": now,
        "device_created_at": born,
    }


def _as_utc(value: object) -> datetime | None:
    """A ``device_created_at`` as the driver gives it (SQLite: naive UTC text), aware."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _changed_rows(
    conn: Connection,
    dialect: str,
    listed: dict[str, tuple[dict[str, Any], datetime | None]],
    existing: dict[str, tuple[str, bool, str, datetime | None]],
) -> list[dict[str, Any]]:
    """The updates for devices whose listed values differ (or that were absent): their
    stored values are read only now, for the detail-only fields to carry over."""
    if not listed:
        return []
    previous = {
        row.serial_number: row.read_values
        for row in conn.execute(
            sa.select(MIRROR.c.serial_number, MIRROR.c["values"].label("read_values")).where(
                in_values(MIRROR.c.serial_number, list(listed), dialect),
                MIRROR.c.present.is_(True),
            )
        )
    }
    updates = []
    for serial, (values, born) in listed.items():
        merged = _merged(dict(values), previous.get(serial))
        digest = values_hash(merged)
        stored, present, _, known = existing[serial]
        if digest != stored or not present or (born is not None and _as_utc(born) != known):
            updates.append(
                {"key": serial, "new_values": merged, "new_hash": digest, "new_born": born}
            )
    return updates


def _merged(values: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """``values`` with the detail-only fields it lacks kept from ``previous``."""
    if previous:
        for name in DETAIL_ONLY:
            if name not in values and name in previous:
                values[name] = previous[name]
    return values


def _mark_absent(conn: Connection, dialect: str, seen: SerialSet, now: datetime) -> int:
    """Mark every present serial the listing did not return absent: the set difference
    of the present serials (read once, through the driver) and the ``seen`` ones, so a
    listed device costs no write. An absent device has no values: its hash changes to
    "", which makes it a candidate, so a wanted device deleted by hand is planned again."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        # Every listed serial is present by now (but one syncd deleted while the listing
        # ran, which ``ListedKeys`` found unchanged: such a race can only delay marking
        # an absence to the next complete listing): more present rows than listed
        # serials is the only way one can be missing, and only then are they read.
        cursor.execute("SELECT count(*) FROM mirror WHERE present")
        (present,) = cursor.fetchone()
        if present <= len(seen):
            return 0
        cursor.execute("SELECT serial_number FROM mirror WHERE present")
        gone = list(seen.missing(serial for (serial,) in cursor))
    finally:
        cursor.close()
    for part in iter_chunks(gone, CHUNK):
        conn.execute(
            MIRROR.update()
            .where(in_values(MIRROR.c.serial_number, part, dialect))
            .values({"present": False, "values": {}, "values_hash": "", "updated_at": now})
        )
    return len(gone)


#: ``store_meta`` key: when a complete listing last refreshed the whole mirror.
REFRESHED_AT = "mirror_refreshed_at"


def seen_at(conn: Connection, serial: str) -> datetime | None:
    """See ``Store.mirror_seen_at``."""
    row_time = conn.execute(
        sa.select(MIRROR.c.updated_at).where(MIRROR.c.serial_number == serial)
    ).scalar()
    listed = conn.execute(
        sa.select(STORE_META.c.value).where(STORE_META.c.key == REFRESHED_AT)
    ).scalar()
    whole = datetime.fromisoformat(listed) if isinstance(listed, str) else None
    times = [t for t in (row_time, whole) if t is not None]
    return max(times) if times else None


def observe(conn: Connection, device: InventoryDevice, now: datetime, dialect: str) -> None:
    """Record one device as just read from the API (a detail read, e.g. after a ``409``):
    present, with its values; ownership and what syncd wrote are kept (unless the
    device was made again by someone else), and the row's sync hash is not touched, so
    the next plan compares it by the three-way rules."""
    row = conn.execute(
        sa.select(
            MIRROR.c["values"].label("read_values"),
            MIRROR.c.present,
            MIRROR.c.ownership,
            MIRROR.c.device_created_at,
        ).where(MIRROR.c.serial_number == device.serial_number)
    ).first()
    if row is not None and _born_again(row.device_created_at, device.created_at, row.ownership):
        disown(conn, [device.serial_number], dialect)
    previous = row.read_values if row is not None and row.present else None
    values = merged_values(device, previous)
    digest = values_hash(values)
    if row is None:
        conn.execute(
            MIRROR.insert().values(
                serial_number=device.serial_number,
                values=values,
                values_hash=digest,
                written={},
                ownership="unmanaged",
                present=True,
                synced_values_hash="",
                first_seen_at=now,
                last_seen_at=now,
                updated_at=now,
                device_created_at=device.created_at,
            )
        )
        return
    conn.execute(
        MIRROR.update()
        .where(MIRROR.c.serial_number == device.serial_number)
        .values(
            {
                "values": values,
                "values_hash": digest,
                "present": True,
                "first_seen_at": sa.func.coalesce(MIRROR.c.first_seen_at, now),
                "last_seen_at": now,
                "updated_at": now,
                "device_created_at": sa.func.coalesce(
                    sa.bindparam("born", device.created_at, type_=UTCDateTime()),
                    MIRROR.c.device_created_at,
                ),
            }
        )
    )


def mark_gone(conn: Connection, serial: str, now: datetime) -> None:
    """The API said the device is not there (404): absent, with no values, so the next
    run plans it from scratch (a create, if it is still wanted)."""
    conn.execute(
        MIRROR.update()
        .where(MIRROR.c.serial_number == serial)
        .values({"present": False, "values": {}, "values_hash": "", "updated_at": now})
    )


def learn_catalogue(db: Database, devices: Iterable[InventoryDevice], now: datetime) -> None:
    """Learn types and organizations from devices read outside a refresh."""
    buffer = CatalogueBuffer()
    for device in devices:
        buffer.learn(device)
    with db.write(lock="shared") as conn:
        buffer.save(conn, db.dialect, now)


def load_catalogue(db: Database) -> Catalogue:
    """Everything learned so far about type and organization ids."""
    with db.read() as conn:
        types = {
            int(row.id): TypeInfo(name=row.name, model=row.model, manufacturer=row.manufacturer)
            for row in conn.execute(sa.select(CATALOGUE_TYPE))
        }
        organizations = {
            int(row.id): OrgInfo(name=row.name, code=row.code)
            for row in conn.execute(sa.select(CATALOGUE_ORGANIZATION))
        }
    return Catalogue(types=types, organizations=organizations)


def write_after(
    conn: Connection,
    dialect: str,
    *,
    serial: str,
    operation: str,
    sent: Mapping[str, Any],
    response: InventoryDevice | None,
    ownership: str | None,
    now: datetime,
) -> None:
    """Update the mirror after syncd's own successful write (see ``Store.record_write``)."""
    # A create body carries the serial too; only writable fields belong in the mirror.
    sent = {name: value for name, value in sent.items() if name in _WRITABLE}
    row = conn.execute(
        sa.select(
            MIRROR.c["values"].label("read_values"),
            MIRROR.c.written,
            MIRROR.c.ownership,
            MIRROR.c.present,
        ).where(MIRROR.c.serial_number == serial)
    ).first()
    if operation == "delete":
        values: dict[str, Any] = {}
        written: dict[str, Any] = {}
        owner = ownership or "unmanaged"
        present = False
        conn.execute(TOMBSTONE.delete().where(TOMBSTONE.c.serial_number == serial))
    else:
        keep = row is not None and operation != "create"
        values = dict(row.read_values) if keep and row is not None and row.present else {}
        values.update(sent)
        if response is not None:
            values.update(merged_values(response, values))
        written = dict(row.written) if keep and row is not None else {}
        written.update(sent)
        default = {"create": "created", "adopt": "adopted"}.get(
            operation, row.ownership if row is not None else "unmanaged"
        )
        owner = ownership or default
        present = True
    digest = values_hash(values) if present else ""
    record: dict[str, Any] = {
        "values": values,
        "values_hash": digest,
        "written": written,
        "ownership": owner,
        "present": present,
        "synced_values_hash": digest,
        "updated_at": now,
    }
    if operation == "delete":
        record["device_created_at"] = None
    elif response is not None and response.created_at is not None:
        record["device_created_at"] = response.created_at
    if present:
        record["last_seen_at"] = now
    stmt = upsert(dialect, MIRROR).values(
        serial_number=serial, first_seen_at=now if present else None, **record
    )
    update = {name: stmt.excluded[name] for name in record}
    conn.execute(stmt.on_conflict_do_update(index_elements=["serial_number"], set_=update))
