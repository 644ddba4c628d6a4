"""The normalised record every connector yields, and the reject it yields instead.

A ``DeviceRecord`` says what one source believes about one device. Values are the
source's own (``device_type`` may be a model name such as ``"C9300-48P"`` or an
inventory id; ``organization`` a tenant name, slug or id): turning them into
inventory ids is the engine's job, through the mapping in the config and the
catalogue learned from the API, so a connector never needs the API.

``None`` means "this source says nothing about the field" (it will not be cleared);
an empty string means "this source says the field is empty".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, dataclass_transform

import orjson


class Attribute(NamedTuple):
    """One field of a device, declared once for every layer.

    ``name`` is the record's (and the policy's) name, ``api`` the inventory API's;
    ``detail_only`` fields are absent from list pages; ``optional_text`` fields treat
    ``""`` and ``None`` alike ("empty") and may be cleared; ``required`` fields must
    be known to create a device.
    """

    name: str
    api: str
    detail_only: bool = False
    optional_text: bool = False
    required: bool = False


#: The device's identifier (diffsync's ``_identifiers``): case-sensitive, exact.
IDENTIFIER = "serial_number"

#: Every field a source can carry and syncd can write (diffsync's ``_attributes``), in
#: the order records, policies, mirror values and change rows list them. The engine,
#: the store, the API client and the connectors take their field lists from here.
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("name", "name", required=True),
    Attribute("device_type", "type", required=True),
    Attribute("organization", "organization", required=True),
    Attribute("status", "status"),
    Attribute("ip_address", "ip_address", optional_text=True),
    Attribute("mac_address", "mac_address", detail_only=True, optional_text=True),
    Attribute("location", "location", optional_text=True),
    Attribute("description", "description", detail_only=True, optional_text=True),
    Attribute("firmware_version", "firmware_version", detail_only=True, optional_text=True),
)

#: The inventory fields a record can carry values for (record names).
RECORD_FIELDS: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)
#: The same fields as the API names them (all writable; ``serial_number`` is set on
#: create only).
API_FIELDS: tuple[str, ...] = tuple(a.api for a in ATTRIBUTES)
#: Record field name -> API field name.
API_FIELD: dict[str, str] = {a.name: a.api for a in ATTRIBUTES}
#: API fields the list endpoint does not return.
DETAIL_ONLY: frozenset[str] = frozenset(a.api for a in ATTRIBUTES if a.detail_only)
#: API fields where ``""`` and ``None`` both mean "empty".
OPTIONAL_TEXT: frozenset[str] = frozenset(a.api for a in ATTRIBUTES if a.optional_text)

_record_values = attrgetter(*RECORD_FIELDS)

Action = Literal["upsert", "delete"]

#: ``extra`` key a connector sets when another record of the same source has a serial
#: that differs from this one only by case (``T8JKSZP`` / ``t8jkszp``). The inventory is
#: case-sensitive, so these are two devices to it; a person must decide, so the engine
#: reports a conflict and writes nothing for either.
CASE_COLLISION = "serial_case_collision"


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, eq_default=True)
def _immutable(cls: type[_T]) -> type[_T]:
    """A slotted dataclass that ``mypy --strict`` treats as frozen (no assignment to a
    field type-checks), built without the run-time guard ``frozen=True`` adds.

    The guard makes ``__init__`` set every field through ``object.__setattr__``, which
    costs five times the plain construction, and a connector builds one record per
    source row (a million per file). Equality and hashing are the frozen class's.
    """
    return dataclass(slots=True, eq=True, unsafe_hash=True)(cls)


@_immutable
class DeviceRecord:
    """One source's view of one device, already validated by the connector.

    ``wanted`` is False when the source knows the device but says it should not be
    in the inventory (a NetBox device in ``decommissioning``, a delta row with
    ``action=delete``): the engine treats it like an absence, subject to ownership
    and grace rules. ``origin`` says where the record came from (file and line,
    NetBox URL) so every reject and conflict can point at it.
    """

    source: str
    serial_number: str
    origin: str = ""
    name: str | None = None
    device_type: str | int | None = None
    organization: str | int | None = None
    status: bool | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    location: str | None = None
    description: str | None = None
    firmware_version: str | None = None
    wanted: bool = True
    action: Action = "upsert"
    extra: tuple[tuple[str, str], ...] = field(default=())

    def values(self) -> dict[str, object]:
        """The fields this record sets (``None`` left out)."""
        return {
            name: value
            for name, value in zip(RECORD_FIELDS, _record_values(self), strict=True)
            if value is not None
        }

    def payload(self) -> bytes:
        """What the record says about the device, encoded once: a compact JSON array of
        its ``RECORD_FIELDS`` values in declaration order (``null`` for "says nothing"),
        followed by its ``extra`` pairs (sorted) if it has any. The store keeps these
        bytes as they are, and ``content_hash`` is taken from them; positions instead of
        keys make it the cheapest encoding of the nine fields (``record_values`` reads
        it back)."""
        if self.extra:
            return orjson.dumps([*_record_values(self), sorted(self.extra)])
        return orjson.dumps(_record_values(self))

    def content_hash(self, payload: bytes | None = None) -> str:
        """A stable hash of what the record says (not where it came from): its serial,
        ``wanted``, ``action`` and ``payload()`` bytes (pass them if already made)."""
        return content_hash(
            self.serial_number,
            self.wanted,
            self.action,
            self.payload() if payload is None else payload,
        )


def record_values(payload: object) -> tuple[dict[str, object], tuple[tuple[str, str], ...]]:
    """The values (``None`` left out) and extra pairs a stored payload holds: the array
    ``DeviceRecord.payload`` writes, or the object an earlier version stored."""
    if isinstance(payload, dict):
        values = {name: payload[name] for name in RECORD_FIELDS if name in payload}
        pairs = payload.get("extra", ())
    else:
        items = list(payload) if isinstance(payload, list | tuple) else []
        values = {
            name: value
            for name, value in zip(RECORD_FIELDS, items, strict=False)
            if value is not None
        }
        pairs = items[len(RECORD_FIELDS)] if len(items) > len(RECORD_FIELDS) else ()
    return values, tuple((str(k), str(v)) for k, v in pairs)


def _digest(data: bytes) -> str:
    """The content hash of ``hash_input`` bytes: BLAKE2b-128 as 32 hex digits. It is
    stored with every source row, so changing it would make every stored row read as
    changed once (a faster one, e.g. XXH3, would need a migration rehashing them)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def content_hash(serial: str, wanted: bool, action: str, payload: bytes) -> str:
    """``DeviceRecord.content_hash`` from a record's parts (the store's fast path)."""
    return _digest(hash_input(serial, wanted, action, payload))


def hash_input(serial: str, wanted: bool, action: str, payload: bytes) -> bytes:
    """The bytes ``content_hash`` is taken over: serial, wanted, action, then the payload."""
    return f"{serial}\x00{'1' if wanted else '0'}\x00{action}\x00".encode() + payload


def content_hashes(
    serials: Sequence[str],
    wanted: Sequence[bool],
    actions: Sequence[str],
    payloads: Sequence[bytes],
) -> list[str]:
    """``content_hash`` of many records at once, from their columns: the same bytes,
    with the few ``wanted``/action middles made once instead of formatted per row."""
    middles: dict[tuple[bool, str], bytes] = {}
    for key in set(zip(wanted, actions, strict=True)):
        middles[key] = f"\x00{'1' if key[0] else '0'}\x00{key[1]}\x00".encode()
    blake2b = hashlib.blake2b
    return [
        blake2b(serial.encode() + middles[w, a] + payload, digest_size=16).hexdigest()
        for serial, w, a, payload in zip(serials, wanted, actions, payloads, strict=True)
    ]


@dataclass(slots=True)
class RecordBlock:
    """Records of one source in columns: what a columnar reader hands the store instead
    of one ``DeviceRecord`` per row (the CSV connector's fast path for plain rows).

    Row ``i`` is the record ``DeviceRecord(source, serials[i], origins[i], wanted=
    wanted[i], action=actions[i], <the values of payloads[i]>)``, and ``payloads[i]`` is
    exactly that record's ``payload()`` (``records()`` rebuilds them). A block holds
    only records, in source order; rejects travel as ``Reject`` items between blocks.
    """

    source: str
    serials: list[str]
    origins: list[str]
    payloads: list[bytes]
    wanted: list[bool]
    actions: list[Action]
    #: The source's order of the ``extra`` keys (a payload holds its pairs sorted):
    #: ``records()`` gives them back in it, as the source's records have them.
    extra_order: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.serials)

    def records(self) -> Iterator[DeviceRecord]:
        """The block as ``DeviceRecord``s (for callers that take records one by one)."""
        rank = {name: index for index, name in enumerate(self.extra_order)}
        for serial, origin, payload, wanted, action in zip(
            self.serials, self.origins, self.payloads, self.wanted, self.actions, strict=True
        ):
            fields, extra = record_values(orjson.loads(payload))
            if len(extra) > 1 and rank:
                extra = tuple(sorted(extra, key=lambda pair: rank.get(pair[0], len(rank))))
            yield DeviceRecord(
                source=self.source,
                serial_number=serial,
                origin=origin,
                wanted=wanted,
                action=action,
                extra=extra,
                **fields,  # type: ignore[arg-type]
            )


_Other = TypeVar("_Other")


def flatten(items: Iterable[RecordBlock | _Other]) -> Iterator[DeviceRecord | _Other]:
    """``items`` with every ``RecordBlock`` given as its records, one by one."""
    for item in items:
        if type(item) is RecordBlock:
            yield from item.records()
        else:
            yield item  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Reject:
    """A row or object a connector could not turn into a record, and why.

    ``location`` is precise enough for a person to find it: ``inbox/po-17.csv:42``,
    ``netbox device 107``.
    """

    source: str
    location: str
    reason: str
    serial_number: str | None = None

    def __str__(self) -> str:
        return f"{self.source} {self.location}: {self.reason}"


class TypeView(Protocol):
    """A device type as the inventory expands it (``manufacturer`` is detail-only)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def manufacturer(self) -> str | None: ...


class OrganizationView(Protocol):
    """An organization as the inventory expands it (``code`` is detail-only)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def code(self) -> str | None: ...


class InventoryDevice(Protocol):
    """A device as read from the inventory, as the store sees it: its serial, the
    writable values the answer carried (API names, ids for type and organization), and
    the expanded type and organization it learns the catalogue from.

    The API client's ``Device`` model fits; the store depends on this shape only, never
    on the client.
    """

    @property
    def serial_number(self) -> str: ...
    @property
    def type(self) -> TypeView: ...
    @property
    def organization(self) -> OrganizationView: ...
    @property
    def created_at(self) -> datetime | None:
        """When the inventory made the device (``None`` if the answer did not say): a
        device listed with another one was made again, by someone else."""
        ...

    def writable_values(self) -> dict[str, Any]:
        """The writable fields present in the answer, in write form."""
        ...
