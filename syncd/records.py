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
import json
from dataclasses import dataclass, field
from typing import Literal

#: The inventory fields a record can carry values for.
RECORD_FIELDS: tuple[str, ...] = (
    "name",
    "device_type",
    "organization",
    "status",
    "ip_address",
    "mac_address",
    "location",
    "description",
    "firmware_version",
)

Action = Literal["upsert", "delete"]

#: ``extra`` key a connector sets when another record of the same source has a serial
#: that differs from this one only by case (``T8JKSZP`` / ``t8jkszp``). The inventory is
#: case-sensitive, so these are two devices to it; a person must decide, so the engine
#: reports a conflict and writes nothing for either.
CASE_COLLISION = "serial_case_collision"


@dataclass(frozen=True, slots=True)
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
        out: dict[str, object] = {}
        for name in RECORD_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def content_hash(self) -> str:
        """A stable hash of what the record says (not where it came from)."""
        payload: dict[str, object] = {
            "serial_number": self.serial_number,
            "wanted": self.wanted,
            "action": self.action,
            **self.values(),
        }
        if self.extra:
            payload["extra"] = sorted(self.extra)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


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
