"""Devices in "load form": what ``--load FILE`` and ``POST /_sandbox/devices`` accept.

Load form is the create body (``serial_number``, ``name``, ``type``,
``organization`` and the optional writable fields, validated exactly like
``POST``) plus server-managed state a test may want to stage:

- ``status`` with ``last_status_change`` (default: now when ``status`` is given);
- ``pending_changes`` (bool) and/or ``pending_details``
  (``{configuration_updates, firmware_update, last_pending_change}``);
- ``created_at``, ``updated_at`` (default: now);
- ``live_status``: what a live check (``update_status=true``) would find.

Datetimes accept the same spellings as ``last_status_change_from``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from syncd.sandbox.catalogue import Catalogue
from syncd.sandbox.query import ParamError, parse_datetime_param
from syncd.sandbox.store import DeviceRow, PendingState
from syncd.sandbox.validation import Errors, FieldError, clean_boolean, validate_write


def parse_datetime_value(value: object, *, allow_null: bool = True) -> datetime | None:
    """A datetime field of load form (ISO 8601 string; naive means UTC)."""
    if value is None and allow_null:
        return None
    if not isinstance(value, str):
        raise FieldError("Datetime has wrong format. Use an ISO 8601 string.")
    try:
        return parse_datetime_param(value)
    except ParamError:
        raise FieldError("Datetime has wrong format. Use an ISO 8601 string.") from None


def parse_pending(value: object, now: datetime) -> PendingState | None:
    """``{configuration_updates, firmware_update, last_pending_change}`` or null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError("Expected an object with configuration_updates, firmware_update.")
    updates = value.get("configuration_updates", 1)
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise FieldError("configuration_updates must be an integer >= 0.")
    firmware = clean_boolean(value.get("firmware_update", False))
    when = parse_datetime_value(value.get("last_pending_change", None)) or now
    return PendingState(updates, firmware, when)


def parse_live_status(value: object) -> bool | None:
    """``true``/``false`` or null (no simulated live status)."""
    return None if value is None else clean_boolean(value)


def row_from_load_form(
    data: object, *, catalogue: Catalogue, now: datetime
) -> tuple[DeviceRow | None, Errors]:
    """One device of a load; returns the row, or ``None`` and the errors by field."""
    if not isinstance(data, dict):
        return None, {"non_field_errors": [f"Expected an object, got {type(data).__name__}."]}
    values, errors = validate_write(data, mode="create", catalogue=catalogue)
    extra: dict[str, Any] = {}
    checks: dict[str, Callable[[object], object]] = {
        "last_status_change": parse_datetime_value,
        "created_at": lambda v: parse_datetime_value(v, allow_null=False),
        "updated_at": lambda v: parse_datetime_value(v, allow_null=False),
        "pending_changes": clean_boolean,
        "pending_details": lambda v: parse_pending(v, now),
        "live_status": parse_live_status,
    }
    for name, check in checks.items():
        if name in data:
            try:
                extra[name] = check(data[name])
            except FieldError as exc:
                errors[name] = [str(exc)]
    if errors:
        return None, errors
    pending: PendingState | None = extra.get("pending_details")
    if pending is None and extra.get("pending_changes"):
        pending = PendingState(1, False, now)
    elif pending is not None and extra.get("pending_changes") is False:
        pending = None
    changed = extra.get("last_status_change", now if "status" in values else None)
    created = extra.get("created_at") or now
    row = DeviceRow(
        serial_number=values["serial_number"],
        name=values["name"],
        type_id=values["type"],
        org_id=values["organization"],
        created_at=created,
        updated_at=extra.get("updated_at") or created,
        status=values.get("status", False),
        last_status_change=changed,
        ip_address=values.get("ip_address"),
        mac_address=values.get("mac_address"),
        location=values.get("location"),
        description=values.get("description"),
        firmware_version=values.get("firmware_version"),
        pending=pending,
        live_status=extra.get("live_status"),
    )
    return row, {}


def rows_from_load(
    items: object, *, catalogue: Catalogue, now: datetime
) -> tuple[list[DeviceRow], dict[str, Errors]]:
    """Every device of a load, or the errors keyed by list index (as a string)."""
    if not isinstance(items, list):
        return [], {"non_field_errors": {"body": ["Expected a JSON list of devices."]}}
    rows: list[DeviceRow] = []
    problems: dict[str, Errors] = {}
    seen: set[str] = set()
    for index, item in enumerate(items):
        row, errors = row_from_load_form(item, catalogue=catalogue, now=now)
        if row is not None and row.serial_number in seen:
            errors = {"serial_number": ["Duplicate serial number in this load."]}
        if errors:
            problems[str(index)] = errors
        elif row is not None:
            seen.add(row.serial_number)
            rows.append(row)
    return rows, problems
