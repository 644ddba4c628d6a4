"""NetBox device (API JSON) -> ``DeviceRecord`` or ``Reject``. Pure: no I/O.

Defaults (each one set in ``[connectors.options.mapping]``):

=====================  =============================================================
record field           from the NetBox device
=====================  =============================================================
serial_number          ``serial``, trimmed; blank -> ``Reject`` "blank serial" (counted)
name                   ``name``; unnamed -> the serial (or skipped, or a template)
device_type            ``{model}`` (``device_type.model``); or ``{manufacturer} {model}``…
organization           ``{tenant}`` (tenant name); or ``{tenant_slug}``
ip_address             ``primary_ip4`` else ``primary_ip``, without the prefix length
location               site / location / rack names joined by `` / ``, empty ones left out
description            ``description``
firmware_version       ``{platform}`` (platform name); or a custom field ``{cf_sw_version}``
wanted                 False when the status is in ``unwanted_statuses``
                       (decommissioning, offline, inventory)
status, mac_address    not set: NetBox has no such device fields (the inventory owns status)
=====================  =============================================================

``origin`` is the device's NetBox page (``display_url``), so a conflict or reject can
be clicked through; ``extra`` carries ``netbox_id`` and ``netbox_status``.

Serials are never changed or merged. Two devices with one serial are both yielded
(the engine reports a conflict). Serials equal but for case (``T8JKSZP`` /
``t8jkszp``) are two serials to the case-sensitive inventory, so the engine alone
would create two devices; :func:`flag_case_twins` marks each such record with
``("serial_case_collision", <the other serial>)`` in ``extra`` so it can be reported.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.netbox.config import NetBoxMapping
from connectors.netbox.templates import Template, getter, text
from syncd.canonical import canonical_ip
from syncd.records import CASE_COLLISION, DeviceRecord, Reject

#: Reason of the reject for a device without a serial (counted by reason).
BLANK_SERIAL = "blank serial: skipped"
#: ``extra`` key naming another serial of this source equal to this one but for case.

#: Fields ``empty_values = "clear"`` may clear; the others are needed to create a device.
_CLEARABLE = ("ip_address", "location", "description", "firmware_version")

Device = Mapping[str, Any]


def device_label(device: Device) -> str:
    """``netbox device 107 (dm-nyc-app01)``: how a person finds it in NetBox."""
    name = text(device.get("name"))
    label = f"netbox device {device.get('id', '?')}"
    return f"{label} ({name})" if name else label


def serial_of(device: Device) -> str:
    """The device's serial, trimmed ("" when blank)."""
    return text(device.get("serial"))


def status_of(device: Device) -> str:
    """The lifecycle status value (``active``, ``offline``…)."""
    status = device.get("status")
    return text(status.get("value")) if isinstance(status, Mapping) else text(status)


class DeviceMapper:
    """Maps devices for one connector (``source`` is its instance name)."""

    def __init__(self, source: str, mapping: NetBoxMapping) -> None:
        self.source = source
        self.mapping = mapping
        self._unwanted = frozenset(mapping.unwanted_statuses)
        self._location = tuple(getter(part) for part in mapping.location)

    def __call__(self, device: Device) -> DeviceRecord | Reject:
        """The record for ``device``, or why it cannot have one."""
        serial = serial_of(device)
        if not serial:
            return Reject(self.source, device_label(device), BLANK_SERIAL)
        m = self.mapping
        name = text(device.get("name"))
        if not name:
            if m.unnamed == "skip":
                return Reject(
                    self.source, device_label(device), "no name (mapping.unnamed = skip)", serial
                )
            name = m.unnamed_template.render(device) if m.unnamed == "template" else serial
            if not name:
                reason = f"no name, and unnamed_template {str(m.unnamed_template)!r} renders empty"
                return Reject(self.source, device_label(device), reason, serial)
        try:
            ip = _ip(device, m.ip_from)
        except ValueError as exc:
            return Reject(self.source, device_label(device), str(exc), serial)
        status = status_of(device)
        values: dict[str, Any] = {
            "device_type": _render(m.device_type, device),
            "organization": _render(m.organization, device) or m.default_organization,
            "ip_address": ip,
            "location": m.location_separator.join(
                part for get in self._location if (part := get(device))
            ),
            "description": _render(m.description, device),
            "firmware_version": _render(m.firmware, device),
        }
        clear = m.empty_values == "clear"
        for key, value in values.items():
            if value == "" and not (clear and key in _CLEARABLE):
                values[key] = None
        return DeviceRecord(
            source=self.source,
            serial_number=serial,
            origin=text(device.get("display_url")) or device_label(device),
            name=name,
            wanted=status not in self._unwanted,
            extra=(("netbox_id", text(device.get("id"))), ("netbox_status", status)),
            **values,
        )


def _render(template: Template | None, device: Device) -> str | None:
    return None if template is None else template.render(device)


def _ip(device: Device, sources: Iterable[str]) -> str:
    for source in sources:
        node = device.get(source)
        if isinstance(node, Mapping) and node.get("address"):
            address = str(node["address"])
            canonical = canonical_ip(address, interface=True)
            if canonical is None:
                raise ValueError(f"{source} {address!r} is not an IP address")
            return canonical
    return ""


def flag_case_twins(records: Iterable[DeviceRecord]) -> list[DeviceRecord]:
    """``records``, each one whose serial equals another's but for case carrying
    ``(CASE_COLLISION, other)`` in ``extra`` (one pair per other spelling)."""
    listed = list(records)
    spellings: dict[str, set[str]] = defaultdict(set)
    for record in listed:
        if record.action == "upsert":
            spellings[record.serial_number.casefold()].add(record.serial_number)
    out: list[DeviceRecord] = []
    for record in listed:
        forms = spellings.get(record.serial_number.casefold(), set())
        others = sorted(forms - {record.serial_number})
        if record.action != "upsert" or not others:
            out.append(record)
            continue
        flags = tuple((CASE_COLLISION, other) for other in others)
        out.append(dataclasses.replace(record, extra=(*record.extra, *flags)))
    return out


def delete_record(source: str, serial: str, origin: str) -> DeviceRecord:
    """The record saying NetBox no longer lists ``serial`` (within the filters)."""
    return DeviceRecord(
        source=source, serial_number=serial, origin=origin, wanted=False, action="delete"
    )
