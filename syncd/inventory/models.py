"""Typed shapes of the Inventory Device Serial API (see ``shared/inventory-api.md``).

Read models accept what the server sends: the list shape lacks the detail-only
fields (``description``, ``mac_address``, ``firmware_version``, ``pending_details``,
``type.manufacturer``, ``organization.code``), so those are optional and ``None``
means "not in this answer", not "empty". Unknown extra fields are kept, so a newer
server does not break an older client.

Write models send ``type`` and ``organization`` as integer ids and never carry the
server-managed fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from syncd.records import API_FIELDS, DETAIL_ONLY

#: Fields only the detail endpoint returns (the list omits them; writes may omit them).
DETAIL_ONLY_FIELDS: frozenset[str] = DETAIL_ONLY | {"pending_details"}

#: Fields a client may write (all but ``serial_number``, which is set on create only):
#: the device's attributes as declared once in ``syncd.records``.
WRITABLE_FIELDS: tuple[str, ...] = API_FIELDS

_ID_FIELDS = frozenset({"type", "organization"})

#: Fields the server owns; a client never sends them.
SERVER_FIELDS: frozenset[str] = frozenset(
    {"last_status_change", "pending_changes", "pending_details", "created_at", "updated_at"}
)


class _Read(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class DeviceType(_Read):
    """A device type as the server expands it (``manufacturer`` is detail-only)."""

    id: int
    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None


class Organization(_Read):
    """An organization as the server expands it (``code`` is detail-only)."""

    id: int
    name: str | None = None
    code: str | None = None


class PendingDetails(_Read):
    """Detail-only, and only with ``pending=true``."""

    configuration_updates: int = 0
    firmware_update: bool = False
    last_pending_change: datetime | None = None


class Device(_Read):
    """A device as read from the API (list or detail shape)."""

    serial_number: str
    name: str
    type: DeviceType
    organization: Organization
    status: bool = False
    last_status_change: datetime | None = None
    ip_address: str | None = None
    location: str | None = None
    pending_changes: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # detail-only
    mac_address: str | None = None
    description: str | None = None
    firmware_version: str | None = None
    pending_details: PendingDetails | None = None

    def has_field(self, name: str) -> bool:
        """True when the server's answer carried ``name`` (detail-only fields may be absent)."""
        return name in self.model_fields_set

    def writable_values(self) -> dict[str, Any]:
        """The writable fields present in this answer, in write form (ids for type/org)."""
        present = self.model_fields_set  # a property: read once, not per field
        out: dict[str, Any] = {}
        for name in WRITABLE_FIELDS:
            if name in _ID_FIELDS:
                out[name] = getattr(self, name).id
            elif name in present:
                out[name] = getattr(self, name)
        return out


class Page(_Read):
    """One page of the list endpoint."""

    count: int
    next: str | None = None
    previous: str | None = None
    results: list[Device] = Field(default_factory=list)


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceCreate(_Write):
    """Body of ``POST /inventory_device_serial/``."""

    serial_number: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: int
    organization: int
    status: bool | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    location: str | None = None
    description: str | None = None
    firmware_version: str | None = None


class DeviceReplace(_Write):
    """Body of ``PUT``: every writable field; an omitted optional field is cleared."""

    name: str = Field(min_length=1)
    type: int
    organization: int
    status: bool | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    location: str | None = None
    description: str | None = None
    firmware_version: str | None = None


class DevicePatch(_Write):
    """Body of ``PATCH``: only the fields set on the instance are sent."""

    name: str | None = Field(default=None, min_length=1)
    type: int | None = None
    organization: int | None = None
    status: bool | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    location: str | None = None
    description: str | None = None
    firmware_version: str | None = None


class ListFilters(_Write):
    """Query parameters of the list endpoint (``limit``/``offset`` are the client's job)."""

    type: int | None = None
    status: bool | None = None
    last_status_change_from: datetime | None = None
    organization: int | None = None
    pending: bool | None = None
    update_status: bool | None = None
