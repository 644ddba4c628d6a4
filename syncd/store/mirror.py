"""The mirror of the inventory, and the type/organization catalogue learned from it.

``refresh`` is fed the client's lazy iterator over the list endpoint and works in
chunks: each chunk's existing rows are read in one query, merged in Python (the
list shape lacks the detail-only fields, so those are kept from earlier reads or
writes), and only new or changed rows are written. When the listing was complete,
every serial it did not return is marked absent, set-based, through a temporary
table of the serials seen.

``record_write`` keeps the mirror true after syncd's own writes, so the next run
does not mistake them for hand edits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.engine import DETAIL_ONLY, Catalogue, OrgInfo, TypeInfo
from syncd.inventory.models import WRITABLE_FIELDS, Device
from syncd.store.db import Database, in_values, upsert
from syncd.store.planning import REPLAN
from syncd.store.rows import MirrorStats, values_hash
from syncd.store.staging import CHUNK, iter_chunks
from syncd.store.tables import (
    CATALOGUE_ORGANIZATION,
    CATALOGUE_TYPE,
    MIRROR,
    STORE_META,
    TOMBSTONE,
)
from syncd.store.types import UTCDateTime

_SEEN = "syncd_seen"
_DETAIL_KEYS = tuple(f'"{name}"' for name in sorted(DETAIL_ONLY))
#: The serials a refresh has seen (a temporary table; never in the schema).
_SEEN_TABLE = sa.Table(_SEEN, sa.MetaData(), sa.Column("serial_number", sa.Text, primary_key=True))


class CatalogueBuffer:
    """What a refresh learned about types and organizations; non-null wins."""

    def __init__(self) -> None:
        self.types: dict[int, dict[str, str | None]] = {}
        self.organizations: dict[int, dict[str, str | None]] = {}

    def learn(self, device: Device) -> None:
        kind = device.type
        known = self.types.setdefault(kind.id, {"name": None, "model": None, "manufacturer": None})
        for key, value in (("name", kind.name), ("model", kind.model)):
            if value is not None:
                known[key] = value
        if kind.manufacturer is not None:
            known["manufacturer"] = kind.manufacturer
        org = device.organization
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


def merged_values(device: Device, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The device's writable values, keeping earlier detail-only values it lacks."""
    values = device.writable_values()
    if previous:
        for name in DETAIL_ONLY:
            if name not in values and name in previous:
                values[name] = previous[name]
    return values


def refresh(
    db: Database,
    devices: Iterable[Device],
    *,
    complete: bool | Callable[[], bool],
    now: datetime,
) -> MirrorStats:
    """Upsert what the API listed; with ``complete``, mark every serial not listed absent."""
    catalogue = CatalogueBuffer()
    listed = new = changed = 0
    with db.engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_SEEN}")
            conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {_SEEN} (serial_number TEXT PRIMARY KEY)")
        try:
            for chunk in iter_chunks(devices, CHUNK):
                by_serial: dict[str, Device] = {}
                for device in chunk:
                    by_serial[device.serial_number] = device  # a page shift may repeat one
                    catalogue.learn(device)
                with db.transaction(conn, lock="exclusive"):
                    n_new, n_changed = _refresh_chunk(conn, db.dialect, by_serial, now)
                listed += len(by_serial)
                new += n_new
                changed += n_changed
            with db.transaction(conn, lock="exclusive"):
                catalogue.save(conn, db.dialect, now)
                whole = complete() if callable(complete) else complete
                gone = _mark_absent(conn, now) if whole else 0
                if whole:
                    stamp = upsert(db.dialect, STORE_META).values(
                        key=REFRESHED_AT, value=now.isoformat()
                    )
                    conn.execute(
                        stamp.on_conflict_do_update(
                            index_elements=["key"], set_={"value": stamp.excluded.value}
                        )
                    )
                listed = int(conn.exec_driver_sql("SELECT count(*) FROM syncd_seen").scalar_one())
        finally:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_SEEN}")
    return MirrorStats(
        listed=listed, new=new, changed=changed, unchanged=listed - new - changed, gone=gone
    )


def _refresh_chunk(
    conn: Connection, dialect: str, devices: dict[str, Device], now: datetime
) -> tuple[int, int]:
    # Values come back as raw JSON text and are decoded only when they hold a
    # detail-only field to carry over: most rows never need decoding.
    existing = {
        row.serial_number: row
        for row in conn.execute(
            sa.select(
                MIRROR.c.serial_number,
                sa.cast(MIRROR.c["values"], sa.Text).label("raw_values"),
                MIRROR.c.values_hash,
                MIRROR.c.present,
                MIRROR.c.ownership,
                MIRROR.c.device_created_at,
            ).where(in_values(MIRROR.c.serial_number, list(devices), dialect))
        )
    }
    seen = [{"serial_number": serial} for serial in devices]
    conn.execute(upsert(dialect, _SEEN_TABLE).on_conflict_do_nothing(), seen)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    reborn: list[str] = []
    for serial, device in devices.items():
        old = existing.get(serial)
        born = device.created_at
        if old is not None and _born_again(old.device_created_at, born, old.ownership):
            reborn.append(serial)
        previous = None
        if old is not None and old.present and any(k in old.raw_values for k in _DETAIL_KEYS):
            previous = json.loads(old.raw_values)
        values = merged_values(device, previous)
        digest = values_hash(values)
        if old is None:
            inserts.append(
                {
                    "serial_number": serial,
                    "values": values,
                    "values_hash": digest,
                    "written": {},
                    "ownership": "unmanaged",
                    "present": True,
                    "synced_values_hash": "",
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "updated_at": now,
                    "device_created_at": born,
                }
            )
        elif (
            digest != old.values_hash
            or not old.present
            or (born is not None and born != old.device_created_at)
        ):
            updates.append(
                {"key": serial, "new_values": values, "new_hash": digest, "new_born": born}
            )
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


def _born_again(known: datetime | None, listed: datetime | None, ownership: str) -> bool:
    """True when a device syncd owns is listed with another creation time than the one
    it knew: it was deleted and made again (by someone else), so it is not syncd's."""
    return ownership != "unmanaged" and known is not None and listed is not None and known != listed


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


def _mark_absent(conn: Connection, now: datetime) -> int:
    # An absent device has no values: its hash changes to "", which makes it a
    # candidate, so a wanted device deleted by hand is planned again.
    result = conn.execute(
        MIRROR.update()
        .where(
            MIRROR.c.present.is_(True),
            ~sa.exists().where(_SEEN_TABLE.c.serial_number == MIRROR.c.serial_number),
        )
        .values({"present": False, "values": {}, "values_hash": "", "updated_at": now})
    )
    return int(result.rowcount)


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


def observe(conn: Connection, device: Device, now: datetime, dialect: str) -> None:
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


def learn_catalogue(db: Database, devices: Iterable[Device], now: datetime) -> None:
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
    response: Device | None,
    ownership: str | None,
    now: datetime,
) -> None:
    """Update the mirror after syncd's own successful write (see ``Store.record_write``)."""
    # A create body carries the serial too; only writable fields belong in the mirror.
    sent = {name: value for name, value in sent.items() if name in WRITABLE_FIELDS}
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
