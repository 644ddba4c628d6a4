"""The sandbox's in-memory device store, kept in serial-number order.

A dict maps serial -> row; a list of the rows sorted by serial gives the list
endpoint its stable order (plain code-point order, so ``ABC`` sorts before
``abc``). Inserts and deletes use ``bisect`` on that list; an unfiltered page is a
slice of it, so
paging a million devices costs the page, not the store. Filtered selections are
computed once per store version and cached, so walking the pages of a filtered
list scans the store once, not once per page.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PendingState:
    """Configuration waiting to be applied to a device (set through the control API)."""

    configuration_updates: int = 0
    firmware_update: bool = False
    last_pending_change: datetime | None = None

    @property
    def is_pending(self) -> bool:
        """True when something is waiting (this is what ``pending_changes`` reports)."""
        return self.configuration_updates > 0 or self.firmware_update


@dataclass(slots=True, eq=False)
class DeviceRow:
    """One device as the sandbox holds it (ids, not expanded objects)."""

    serial_number: str
    name: str
    type_id: int
    org_id: int
    created_at: datetime
    updated_at: datetime
    status: bool = False
    last_status_change: datetime | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    location: str | None = None
    description: str | None = None
    firmware_version: str | None = None
    pending: PendingState | None = None
    #: What a live check would find (``None``: the check confirms the stored status).
    live_status: bool | None = None

    def clone(self) -> DeviceRow:
        """An independent copy (every field is immutable, so a shallow copy is enough)."""
        return DeviceRow(
            serial_number=self.serial_number,
            name=self.name,
            type_id=self.type_id,
            org_id=self.org_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            status=self.status,
            last_status_change=self.last_status_change,
            ip_address=self.ip_address,
            mac_address=self.mac_address,
            location=self.location,
            description=self.description,
            firmware_version=self.firmware_version,
            pending=self.pending,
            live_status=self.live_status,
        )


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """The list endpoint's filters plus the caller's organization scope.

    ``None`` means "no condition". ``org_scope`` is the set of organizations a
    scoped token may see.
    """

    type_id: int | None = None
    org_id: int | None = None
    status: bool | None = None
    changed_from: datetime | None = None
    org_scope: frozenset[int] | None = None

    @property
    def is_empty(self) -> bool:
        """True when every device matches."""
        return (
            self.type_id is None
            and self.org_id is None
            and self.status is None
            and self.changed_from is None
            and self.org_scope is None
        )


_CACHE_SIZE = 32


def _serial(row: DeviceRow) -> str:
    return row.serial_number


@dataclass(slots=True)
class DeviceStore:
    """Rows by serial plus the rows in serial order; not thread-safe (one event loop)."""

    _by_serial: dict[str, DeviceRow] = field(default_factory=dict)
    _ordered: list[DeviceRow] = field(default_factory=list)
    _live: set[str] = field(default_factory=set)
    _cache: dict[DeviceFilter, list[DeviceRow]] = field(default_factory=dict)
    version: int = 0

    def __len__(self) -> int:
        return len(self._ordered)

    def __contains__(self, serial: object) -> bool:
        return serial in self._by_serial

    def __iter__(self) -> Iterator[DeviceRow]:
        return iter(self._ordered)

    def get(self, serial: str) -> DeviceRow | None:
        """The row for ``serial`` (exact, case-sensitive), or ``None``."""
        return self._by_serial.get(serial)

    def add(self, row: DeviceRow) -> None:
        """Insert a device whose serial is not in the store yet."""
        if row.serial_number in self._by_serial:
            raise KeyError(row.serial_number)
        self._by_serial[row.serial_number] = row
        ordered = self._ordered
        if not ordered or ordered[-1].serial_number < row.serial_number:
            ordered.append(row)
        else:
            bisect.insort(ordered, row, key=_serial)
        self._track_live(row)
        self.changed()

    def delete(self, serial: str) -> DeviceRow | None:
        """Remove a device; returns it, or ``None`` if it was not there."""
        row = self._by_serial.pop(serial, None)
        if row is None:
            return None
        del self._ordered[self._index(serial)]
        self._live.discard(serial)
        self.changed()
        return row

    def put_many(self, rows: Iterable[DeviceRow]) -> int:
        """Insert or replace many devices at once; returns how many were given."""
        added: list[DeviceRow] = []
        count = 0
        for row in rows:
            count += 1
            previous = self._by_serial.get(row.serial_number)
            self._by_serial[row.serial_number] = row
            if previous is None:
                added.append(row)
            else:
                self._ordered[self._index(row.serial_number)] = row
            self._track_live(row)
        # Sorting once (timsort merges the sorted runs) beats many mid-list inserts as
        # soon as a batch is more than a sliver of the store.
        if len(added) > 64 and len(added) * 32 > len(self._ordered):
            self._ordered.extend(added)
            self._ordered.sort(key=_serial)
        else:
            for row in added:
                bisect.insort(self._ordered, row, key=_serial)
        self.changed()
        return count

    def clear(self) -> None:
        """Forget every device."""
        self._by_serial.clear()
        self._ordered.clear()
        self._live.clear()
        self.changed()

    def changed(self) -> None:
        """Call after mutating a row in place: drops cached selections."""
        self.version += 1
        self._cache.clear()

    def set_live_status(self, row: DeviceRow, live_status: bool | None) -> None:
        """Set what a live check of ``row`` would find."""
        row.live_status = live_status
        self._track_live(row)

    def live_rows(self) -> list[DeviceRow]:
        """The devices whose simulated live status is set."""
        return [self._by_serial[k] for k in self._live]

    def select(self, flt: DeviceFilter) -> Sequence[DeviceRow]:
        """Rows matching ``flt`` in serial order. Callers must not mutate the result."""
        if flt.is_empty:
            return self._ordered
        cached = self._cache.get(flt)
        if cached is not None:
            return cached
        selected = self._scan(flt)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[flt] = selected
        return selected

    def _index(self, serial: str) -> int:
        return bisect.bisect_left(self._ordered, serial, key=_serial)

    def _scan(self, flt: DeviceFilter) -> list[DeviceRow]:
        # One inline comprehension per condition, most selective first: cheaper than a
        # predicate call per row on a million devices.
        selected = self._ordered
        if flt.org_id is not None:
            org_id = flt.org_id
            selected = [r for r in selected if r.org_id == org_id]
        if flt.type_id is not None:
            type_id = flt.type_id
            selected = [r for r in selected if r.type_id == type_id]
        if flt.org_scope is not None:
            scope = flt.org_scope
            selected = [r for r in selected if r.org_id in scope]
        if flt.status is not None:
            status = flt.status
            selected = [r for r in selected if r.status is status]
        if flt.changed_from is not None:
            since = flt.changed_from
            selected = [
                r
                for r in selected
                if r.last_status_change is not None and r.last_status_change >= since
            ]
        return selected

    def _track_live(self, row: DeviceRow) -> None:
        if row.live_status is None:
            self._live.discard(row.serial_number)
        else:
            self._live.add(row.serial_number)
