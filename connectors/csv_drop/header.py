"""The header row: which column feeds which record field.

Header cells are matched after ``normalize_header`` (case-folded, every space,
underscore, hyphen, dot or other punctuation removed), so ``Serial Number``,
``serial_number``, ``SERIAL-NO.`` and ``S/N`` all find their field. The config's
``columns`` mapping is matched the same way and wins over the built-in aliases.
A header cell may span lines (a wrapped spreadsheet heading) but holds no other
control character: such a header is refused, since header texts name columns in
every message and key the unmapped values kept in ``DeviceRecord.extra``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from connectors.csv_drop.controls import find_control

#: Value of a ``columns`` entry that drops the column on purpose.
IGNORE = "ignore"

_PUNCTUATION = re.compile(r"[\W_]+")

#: Built-in header aliases, by the field they feed (matched after normalisation).
ALIASES: Mapping[str, tuple[str, ...]] = {
    "serial_number": ("serial", "serial_number", "serialnumber", "serial no", "sn", "s/n"),
    "name": ("name", "hostname", "host name", "device_name"),
    "device_type": ("type", "device_type", "model"),
    "organization": ("organization", "organisation", "org", "tenant", "customer"),
    "ip_address": ("ip", "ip_address", "mgmt_ip", "management_ip", "primary_ip"),
    "mac_address": ("mac", "mac_address"),
    "location": ("location", "site"),
    "description": ("description", "desc"),
    "firmware_version": ("firmware", "firmware_version", "os_version"),
    "status": ("status",),
    "action": ("action",),
}


def normalize_header(cell: str) -> str:
    """The form headers and ``columns`` keys are compared in: ``"Serial No."`` -> ``"serialno"``."""
    return _PUNCTUATION.sub("", cell.casefold())


_BUILTIN: dict[str, str] = {
    normalize_header(alias): field for field, aliases in ALIASES.items() for alias in aliases
}


class HeaderError(ValueError):
    """The header cannot be used: the whole file is rejected."""


@dataclass(frozen=True, slots=True)
class HeaderPlan:
    """Where each field is in a row.

    ``fields`` maps a record field (or ``action``) to its column index; ``extra``
    lists the columns no field claims (kept in ``DeviceRecord.extra``), by index and
    header text; ``labels`` is each column's header as written, for messages.
    """

    fields: Mapping[str, int]
    extra: tuple[tuple[int, str], ...]
    labels: tuple[str, ...]

    @property
    def width(self) -> int:
        """How many fields a row should have."""
        return len(self.labels)


def plan_header(
    header: Sequence[str],
    *,
    columns: Mapping[str, str],
    required: Sequence[str],
    skipped: Collection[str] = (),
) -> HeaderPlan:
    """Map ``header`` to fields; ``HeaderError`` naming the problem if it cannot be used.

    ``columns`` (already normalised keys) wins over the aliases; a field claimed by
    two columns and a missing required field are errors. A column of a ``skipped``
    field is dropped as if mapped to ``"ignore"``.
    """
    labels = tuple(cell.strip() for cell in header)
    for index, label in enumerate(labels):
        control = find_control(label, multiline=True)
        if control is not None:
            position, char = control
            raise HeaderError(
                f"column {index + 1} header {label!r} contains control character {char} "
                f"at position {position}"
            )
    fields: dict[str, int] = {}
    extra: list[tuple[int, str]] = []
    for index, label in enumerate(labels):
        key = normalize_header(label)
        field = columns.get(key) or _BUILTIN.get(key)
        if field == IGNORE or field in skipped:
            continue
        if field is None:
            extra.append((index, label or f"column {index + 1}"))
            continue
        if field in fields:
            first = labels[fields[field]]
            raise HeaderError(
                f"columns {first!r} ({fields[field] + 1}) and {label!r} ({index + 1}) both map "
                f"to {field}; map one of them to {IGNORE!r} in the connector's columns option"
            )
        fields[field] = index
    missing = [name for name in required if name not in fields]
    if missing:
        found = ", ".join(repr(label) for label in labels)
        raise HeaderError(
            f"no column for required field {', '.join(missing)} (headers found: {found})"
        )
    return HeaderPlan(fields=fields, extra=tuple(extra), labels=labels)
