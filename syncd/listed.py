"""A device as a list page gives it, in plain values: what a mirror refresh needs, and no more.

A refresh lists the whole inventory, a million rows at scale, and nearly every row is
unchanged: it costs the store one hash and one compare. Validating each row into the
API client's pydantic ``Device`` cost twice what the store spends on it, so the listing
checks the plain decoded row instead (:func:`listed_device`): exact JSON types, nothing
to coerce. A row that check accepts is one ``Device`` validation accepts too, with the
same values; any other row (a value pydantic would coerce, a malformed one, a
``pending_details`` object) is left to ``Device`` itself, which accepts it or names
what is wrong, exactly as before. A test reads the same pages both ways.

:class:`ListedDevice` has the ``InventoryDevice`` shape of ``syncd.records``, so the
store takes it as it takes a ``Device``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from syncd.records import API_FIELDS

__all__ = ["ListedDevice", "OrgRef", "TypeRef", "listed_device", "utc_text"]

#: An instant in the one form the API writes (``2026-01-05T09:30:00Z``, fractions and
#: offsets allowed). ASCII digits only; anything else is left to pydantic.
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
#: Optional text fields of the read shape (``None``, absent or a string).
_TEXT = ("ip_address", "location", "mac_address", "description", "firmware_version")
#: Boolean fields with a default (absent or a boolean; ``null`` is not a boolean).
_FLAGS = ("status", "pending_changes")
#: Optional instants.
_INSTANTS = ("last_status_change", "updated_at")
#: The writable fields a row may carry besides name, type and organization, in order.
_OPTIONAL_WRITABLE = tuple(n for n in API_FIELDS if n not in ("name", "type", "organization"))
#: Integers the fast check takes as ids (beyond, pydantic decides).
_ID_RANGE = range(-(2**63), 2**63)


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

    def __repr__(self) -> str:
        return f"ListedDevice({self.serial_number!r}, {self._values!r})"

    @classmethod
    def of(cls, device: Any) -> ListedDevice:
        """The plain form of a validated device (anything of the ``InventoryDevice``
        shape), for the rows the fast check left to pydantic."""
        kind, org = device.type, device.organization
        return cls(
            device.serial_number,
            device.writable_values(),
            type=TypeRef(kind.id, kind.name, kind.model, kind.manufacturer),
            organization=OrgRef(org.id, org.name, org.code),
            created_at=device.created_at,
        )


def listed_device(item: object) -> ListedDevice | None:
    """``item`` (a decoded row) as a :class:`ListedDevice`, when plain checks prove it a
    valid device; ``None`` when they cannot (``Device`` validation decides then)."""
    if type(item) is not dict:
        return None
    serial, name = item.get("serial_number"), item.get("name")
    if type(serial) is not str or type(name) is not str:
        return None
    kind = _type_ref(item.get("type"))
    org = _org_ref(item.get("organization"))
    if kind is None or org is None or not _plain_rest(item):
        return None
    born = item.get("created_at")
    created_at = created_utc = None
    if born is not None:
        created_at = _instant(born)
        if created_at is None:
            return None
        if born[-1] == "Z":  # the API's own form: the UTC text is a rearrangement
            fraction = born[19:-1]
            created_utc = f"{born[:10]} {born[11:19]}{(fraction or '.') + '000000'}"[:26]
    values: dict[str, Any] = {"name": name, "type": kind.id, "organization": org.id}
    for field in _OPTIONAL_WRITABLE:
        if field in item:
            values[field] = item[field]
    return ListedDevice(
        serial, values, type=kind, organization=org, created_at=created_at, created_utc=created_utc
    )


def utc_text(moment: datetime | None) -> str | None:
    """``moment`` in UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive is taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def _type_ref(value: object) -> TypeRef | None:
    if type(value) is not dict:
        return None
    ident = value.get("id")
    texts = (value.get("name"), value.get("model"), value.get("manufacturer"))
    if type(ident) is not int or ident not in _ID_RANGE or not _texts(texts):
        return None
    return TypeRef(ident, *texts)


def _org_ref(value: object) -> OrgRef | None:
    if type(value) is not dict:
        return None
    ident = value.get("id")
    texts = (value.get("name"), value.get("code"))
    if type(ident) is not int or ident not in _ID_RANGE or not _texts(texts):
        return None
    return OrgRef(ident, *texts)


def _texts(values: tuple[object, ...]) -> bool:
    return all(v is None or type(v) is str for v in values)


def _plain_rest(item: dict[str, Any]) -> bool:
    """Every other field of the read shape is absent or of its exact type."""
    for field in _TEXT:
        value = item.get(field)
        if value is not None and type(value) is not str:
            return False
    for field in _FLAGS:
        if type(item.get(field, False)) is not bool:
            return False
    for field in _INSTANTS:
        value = item.get(field)
        if value is not None and _instant(value) is None:
            return False
    return item.get("pending_details") is None


def _instant(value: object) -> datetime | None:
    """The instant of an API timestamp in its usual form, or ``None`` (not decided)."""
    if type(value) is not str or not _INSTANT.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
