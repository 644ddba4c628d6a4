"""Device rows to the contract's JSON shapes, and JSON encoding as DRF does it.

The list shape really lacks the detail-only keys (``description``, ``mac_address``,
``firmware_version``, ``pending_details``, ``type.manufacturer``,
``organization.code``): they are absent, not null. Datetimes are ISO 8601 in UTC
with a ``Z`` suffix (DRF's ``DateTimeField`` output).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from syncd.sandbox.catalogue import Catalogue
from syncd.sandbox.store import DeviceRow


def format_datetime(value: datetime | None) -> str | None:
    """``2024-01-15T14:30:22Z`` (microseconds kept when present, as DRF does)."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def list_item(row: DeviceRow, catalogue: Catalogue) -> dict[str, Any]:
    """A device as the list endpoint (and write responses) show it."""
    return {
        "serial_number": row.serial_number,
        "name": row.name,
        "type": catalogue.type_list_shape(row.type_id),
        "organization": catalogue.org_list_shape(row.org_id),
        "status": row.status,
        "last_status_change": format_datetime(row.last_status_change),
        "ip_address": row.ip_address,
        "location": row.location,
        "pending_changes": row.pending is not None and row.pending.is_pending,
        "created_at": format_datetime(row.created_at),
        "updated_at": format_datetime(row.updated_at),
    }


def detail(row: DeviceRow, catalogue: Catalogue, *, pending: bool) -> dict[str, Any]:
    """A device as the detail endpoint shows it; ``pending_details`` only when asked."""
    out: dict[str, Any] = {
        "serial_number": row.serial_number,
        "name": row.name,
        "type": catalogue.type_detail_shape(row.type_id),
        "organization": catalogue.org_detail_shape(row.org_id),
        "status": row.status,
        "last_status_change": format_datetime(row.last_status_change),
        "ip_address": row.ip_address,
        "mac_address": row.mac_address,
        "location": row.location,
        "description": row.description,
        "firmware_version": row.firmware_version,
        "pending_changes": row.pending is not None and row.pending.is_pending,
    }
    if pending:
        state = row.pending
        out["pending_details"] = {
            "configuration_updates": state.configuration_updates if state else 0,
            "firmware_update": state.firmware_update if state else False,
            "last_pending_change": format_datetime(state.last_pending_change) if state else None,
        }
    out["created_at"] = format_datetime(row.created_at)
    out["updated_at"] = format_datetime(row.updated_at)
    return out


def dumps(data: object) -> bytes:
    """Compact UTF-8 JSON, like DRF's ``JSONRenderer`` (``UNICODE_JSON``, ``COMPACT_JSON``).

    Like DRF, U+2028 and U+2029 are escaped: valid JSON, but not valid JavaScript.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
