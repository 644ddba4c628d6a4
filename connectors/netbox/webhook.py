"""What a NetBox webhook asks of syncd: which devices to pull again (pure, no I/O).

NetBox posts, for each event rule that fires, a JSON body (unless the webhook has a
body template) holding the ``event`` (``created``, ``updated``, ``deleted``), the model
(``"object_type": "dcim.device"`` since NetBox 4.0, ``"model": "device"`` before), the
object as its REST API shows it (``data``) and ``snapshots`` of its state before and
after the change. ``read_event`` makes of it:

- ``pull`` with the serials to pull again: the device's serial now (``data.serial``),
  plus the one it had before when the change edited it (``snapshots.prechange``), so
  the old serial is pulled too and, held by no device any more, becomes a ``delete``
  record (an orphan candidate, never a deletion by itself). A deleted device's
  ``data`` is its last state, so its serial is pulled and found gone.
- ``ignore`` with a note: another model, another event, or a device without a serial
  before and after (the inventory is keyed by serial: nothing there can match it).
- ``pull_all`` when the payload carries no serial field at all (a custom body
  template that sends only the id): the connector's ordinary pull (incremental,
  since its watermark) reads that device among the others.

Anything else (not a JSON object, no model, no ``data``) is a ``DataError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from syncd.errors import DataError

#: The model names NetBox gives devices: 4.x's ``object_type``, 3.x's ``model``.
DEVICE_MODELS: Final = frozenset({"dcim.device", "device"})
#: NetBox's event names (the payload's ``event``), and the event types they come from.
EVENTS: Final = {
    "created": "created",
    "updated": "updated",
    "deleted": "deleted",
    "object_created": "created",
    "object_updated": "updated",
    "object_deleted": "deleted",
}
#: A serial longer than this is not a serial (NetBox's own limit is 50).
MAX_SERIAL_CHARS: Final = 255

Action = Literal["pull", "pull_all", "ignore"]


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """What one webhook asks for (see the module)."""

    action: Action
    model: str
    event: str
    device_id: int | None = None
    serials: tuple[str, ...] = ()
    note: str = ""


def read_event(payload: object) -> WebhookEvent:
    """The decoded JSON body of a NetBox webhook, read (see the module)."""
    if not isinstance(payload, Mapping):
        raise DataError("the body is not a JSON object (a NetBox webhook payload)")
    model = _model(payload)
    event = payload.get("event")
    shown = str(event) if isinstance(event, str) else repr(event)
    if model.lower() not in DEVICE_MODELS:
        return WebhookEvent("ignore", model, shown, note=f"{model} is not a device: ignored")
    kind = EVENTS.get(event) if isinstance(event, str) else None
    if kind is None:
        return WebhookEvent(
            "ignore", model, shown, note=f"event {shown} is not a create, update or delete"
        )
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise DataError("'data' is missing or not an object: the payload names no device")
    device_id = _device_id(data)
    serials, has_field = _serials(data, payload.get("snapshots"))
    if serials:
        return WebhookEvent("pull", model, kind, device_id, serials)
    which = f"device {device_id}" if device_id is not None else "the device"
    if has_field:
        note = f"{which} has no serial in NetBox: nothing in the inventory can match it"
        return WebhookEvent("ignore", model, kind, device_id, note=note)
    if device_id is None:
        raise DataError("'data' has neither 'serial' nor 'id': the payload names no device")
    note = (
        f"the payload carries no serial (a body template?): the connector's next pull "
        f"reads {which} with every other change"
    )
    return WebhookEvent("pull_all", model, kind, device_id, note=note)


def _model(payload: Mapping[str, object]) -> str:
    for key in ("object_type", "model"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise DataError("the payload names no model: neither 'object_type' nor 'model' is set")


def _device_id(data: Mapping[str, object]) -> int | None:
    value = data.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _serials(data: Mapping[str, object], snapshots: object) -> tuple[tuple[str, ...], bool]:
    """The serials the event touches (now, and before an edit), and whether the payload
    had a serial field at all."""
    found: list[str] = []
    has_field = False
    places: list[tuple[str, Mapping[str, object]]] = [("data", data)]
    if isinstance(snapshots, Mapping):
        for when in ("prechange", "postchange"):
            snapshot = snapshots.get(when)
            if isinstance(snapshot, Mapping):
                places.append((f"snapshots.{when}", snapshot))
    for where, place in places:
        if "serial" not in place:
            continue
        has_field = True
        serial = _serial(place["serial"], f"{where}.serial")
        if serial and serial not in found:
            found.append(serial)
    return tuple(found), has_field


def _serial(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where} is not text")
    serial = value.strip()
    if len(serial) > MAX_SERIAL_CHARS:
        raise DataError(f"{where} is longer than {MAX_SERIAL_CHARS} characters")
    return serial
