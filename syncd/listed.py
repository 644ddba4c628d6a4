"""A device as a list page gives it, in plain values: what a mirror refresh needs, and no more.

A refresh lists the whole inventory, a million rows at scale, and nearly every row is
unchanged: it costs the store one hash and one compare. Validating each row into the
API client's pydantic ``Device`` cost more than the store spent on it, so a listed page
is validated in one call (:func:`listed_page`) against ``Device``'s fields and types
declared as a plain ``TypedDict``: the same rules in pydantic's own code, but plain dicts
out, from which :class:`ListedDevice` takes the values a refresh needs. A page with a
malformed row is validated row by row; the row is ``None`` here, and the listing
validates it into a ``Device`` to name what is wrong, exactly as before. A test reads
the same pages both ways, rows pydantic coerces or refuses included.

:class:`ListedDevice` has the ``InventoryDevice`` shape of ``syncd.records``, so the
store takes it as it takes a ``Device``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple, NotRequired

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from syncd.records import API_FIELDS

__all__ = ["ListedDevice", "OrgRef", "TypeRef", "listed_device", "listed_page", "utc_text"]

#: An instant as the API writes it, in UTC (``2026-01-05T09:30:00Z``, a fraction of up
#: to six digits allowed; ASCII digits only).
_INSTANT_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")
#: The writable fields a row may carry besides name, type and organization, in order.
_OPTIONAL_WRITABLE = tuple(n for n in API_FIELDS if n not in ("name", "type", "organization"))


class TypeRef(NamedTuple):
    """A device type as the list expands it (``manufacturer`` is detail-only)."""

    id: int
    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None


class OrgRef(NamedTuple):
    """An organization as the list expands it (``code`` is detail-only)."""

    id: int
    name: str | None = None
    code: str | None = None


class ListedDevice:
    """One listed device: its serial, its creation time, its expanded type and
    organization, and the writable values the answer carried (API names, ids for type
    and organization; a field the answer lacked is absent, as ``Device`` has it)."""

    __slots__ = ("_values", "created_at", "created_utc", "organization", "serial_number", "type")

    def __init__(
        self,
        serial_number: str,
        values: dict[str, Any],
        *,
        type: TypeRef,  # noqa: A002 - the API's field name
        organization: OrgRef,
        created_at: datetime | None,
        created_utc: str | None = None,
    ) -> None:
        self.serial_number = serial_number
        self._values = values
        self.type = type
        self.organization = organization
        self.created_at = created_at
        #: ``created_at`` in UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive, the form the
        #: store's SQLite column holds): made from the API's text, since formatting a
        #: ``datetime`` costs more than the rest of a listed row's store-side work.
        self.created_utc = created_utc if created_utc is not None else utc_text(created_at)

    def writable_values(self) -> dict[str, Any]:
        """The writable fields present in the answer, in write form (a fresh dict)."""
        return dict(self._values)

    def listed_values(self) -> dict[str, Any]:
        """The same, not copied: the row's own dict, which the caller must not change
        (a refresh hashes a million of them and keeps only those that changed)."""
        return self._values

    def __repr__(self) -> str:
        return f"ListedDevice({self.serial_number!r}, {self._values!r})"

    @classmethod
    def of(cls, device: Any) -> ListedDevice:
        """The plain form of a validated device (anything of the ``InventoryDevice``
        shape)."""
        kind, org = device.type, device.organization
        return cls(
            device.serial_number,
            device.writable_values(),
            type=TypeRef(kind.id, kind.name, kind.model, kind.manufacturer),
            organization=OrgRef(org.id, org.name, org.code),
            created_at=device.created_at,
        )


class _TypeRow(TypedDict):
    id: int
    name: NotRequired[str | None]
    model: NotRequired[str | None]
    manufacturer: NotRequired[str | None]


class _OrgRow(TypedDict):
    id: int
    name: NotRequired[str | None]
    code: NotRequired[str | None]


class _PendingRow(TypedDict):
    configuration_updates: NotRequired[int]
    firmware_update: NotRequired[bool]
    last_pending_change: NotRequired[datetime | None]


class _Row(TypedDict):
    """``syncd.inventory.models.Device``'s fields and types, as a plain dict: validated by
    the same rules (pydantic's, lax), without building a model per row."""

    serial_number: str
    name: str
    type: _TypeRow
    organization: _OrgRow
    status: NotRequired[bool]
    last_status_change: NotRequired[datetime | None]
    ip_address: NotRequired[str | None]
    location: NotRequired[str | None]
    pending_changes: NotRequired[bool]
    created_at: NotRequired[datetime | None]
    updated_at: NotRequired[datetime | None]
    mac_address: NotRequired[str | None]
    description: NotRequired[str | None]
    firmware_version: NotRequired[str | None]
    pending_details: NotRequired[_PendingRow | None]


@cache
def _adapters() -> tuple[TypeAdapter[_Row], TypeAdapter[list[_Row]]]:
    """The row's and the page's validators, built on first use (not when the store, which
    imports this module, is loaded)."""
    return TypeAdapter(_Row), TypeAdapter(list[_Row])


def listed_page(items: list[Any]) -> list[ListedDevice | None]:
    """Each decoded row of a page as a :class:`ListedDevice`, validated in one call over
    the page; ``None`` for a row that is not a valid device (``Device`` validation then
    names what is wrong). A page with a bad row is validated row by row."""
    try:
        rows = _adapters()[1].validate_python(items)
    except ValidationError:
        return [listed_device(item) for item in items]
    return [_listed(row, item) for row, item in zip(rows, items, strict=True)]


def listed_device(item: object) -> ListedDevice | None:
    """One decoded row as a :class:`ListedDevice`, or ``None`` if it is not a valid device."""
    try:
        row = _adapters()[0].validate_python(item)
    except ValidationError:
        return None
    return _listed(row, item)


def _listed(row: _Row, item: Any) -> ListedDevice:
    kind, org = row["type"], row["organization"]
    values: dict[str, Any] = {"name": row["name"], "type": kind["id"], "organization": org["id"]}
    for field in _OPTIONAL_WRITABLE:
        if field in row:
            values[field] = row[field]  # type: ignore[literal-required]
    born = row.get("created_at")
    return ListedDevice(
        row["serial_number"],
        values,
        type=TypeRef(kind["id"], kind.get("name"), kind.get("model"), kind.get("manufacturer")),
        organization=OrgRef(org["id"], org.get("name"), org.get("code")),
        created_at=born,
        created_utc=_utc_of(item.get("created_at")) if born is not None else None,
    )


def _utc_of(text: object) -> str | None:
    """The UTC text of an instant written as the API writes it (``...Z``), by
    rearranging it (formatting a ``datetime`` costs more); ``None`` for another form."""
    if type(text) is not str or not _INSTANT_Z.fullmatch(text):
        return None
    fraction = text[19:-1]
    return f"{text[:10]} {text[11:19]}{(fraction or '.') + '000000'}"[:26]


def utc_text(moment: datetime | None) -> str | None:
    """``moment`` in UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive is taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")
