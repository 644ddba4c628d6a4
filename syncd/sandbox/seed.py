"""Deterministic sample devices for ``--seed-devices N``.

Device ``i`` is always the same (serial ``SBX-0000000`` + i, type, organization,
status, addresses, timestamps), whatever the run, so a benchmark or a demo can
be repeated and compared. About one in five is Down, one in ten has pending
changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from syncd.sandbox.catalogue import Catalogue
from syncd.sandbox.store import DeviceRow, PendingState

SERIAL_PREFIX = "SBX-"
_CREATED = datetime(2024, 1, 1, tzinfo=UTC)
_YEAR_SECONDS = 365 * 86400
_LOCATIONS = (
    "Data Center A - Rack 15",
    "Data Center A - Rack 16",
    "Data Center B - Row 3",
    "Branch Office B",
    "HQ - Floor 2 IDF",
    "HQ - Floor 5 IDF",
    "Warehouse North",
    "Remote Site 12",
)
_FIRMWARE = ("16.12.05", "17.9.4a", "10.2.7", "7.4.3", "8.10.190.0", "22.4R3")


def sample_serial(index: int) -> str:
    """The serial of sample device ``index``."""
    return f"{SERIAL_PREFIX}{index:07d}"


def sample_devices(count: int, catalogue: Catalogue) -> Iterator[DeviceRow]:
    """Sample devices ``0 .. count-1`` in serial order."""
    type_ids = sorted(catalogue.types)
    org_ids = sorted(catalogue.organizations)
    prefixes = {t: catalogue.types[t].name.replace(" ", "-") for t in type_ids}
    for i in range(count):
        type_id = type_ids[i % len(type_ids)]
        org_id = org_ids[(i // len(type_ids)) % len(org_ids)]
        created = _CREATED + timedelta(seconds=i)
        changed = created + timedelta(seconds=(i * 7919) % _YEAR_SECONDS)
        pending = (
            PendingState(i % 3 + 1, i % 20 == 0, changed + timedelta(hours=1))
            if i % 10 == 3
            else None
        )
        yield DeviceRow(
            serial_number=f"{SERIAL_PREFIX}{i:07d}",
            name=f"{prefixes[type_id]}-{i:07d}",
            type_id=type_id,
            org_id=org_id,
            created_at=created,
            updated_at=changed,
            status=i % 5 != 4,
            last_status_change=changed,
            ip_address=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            mac_address="02:00:%02X:%02X:%02X:%02X"  # noqa: UP031 - fastest for a million
            % ((i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255),
            location=_LOCATIONS[i % len(_LOCATIONS)],
            description=None,
            firmware_version=_FIRMWARE[type_id % len(_FIRMWARE)],
            pending=pending,
        )
