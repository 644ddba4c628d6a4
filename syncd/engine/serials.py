"""Serial numbers: the key, compared exactly; normalised only as the policy says.

The inventory compares serials case-sensitively, so nothing here changes a serial
unless a rule in ``SerialRules`` asks for it. Two records that normalise to one
serial are not merged here: the planner reports them as a collision.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncd.engine.policy import SerialRules
from syncd.records import DeviceRecord


class EmptySerialError(ValueError):
    """The serial is empty, or became empty under the normalisation rules."""


def normalize_serial(raw: str, rules: SerialRules) -> str:
    """The serial ``raw`` under ``rules`` (see ``SerialRules`` for the order of steps).

    Raises ``EmptySerialError`` when nothing is left, so an empty key never reaches
    the inventory.
    """
    serial = raw.strip() if rules.strip else raw
    if rules.remove_chars:
        serial = serial.translate(_deletion_table(rules.remove_chars))
    for prefix in rules.strip_prefixes:
        if serial.startswith(prefix):
            serial = serial[len(prefix) :]
            if rules.strip:
                serial = serial.strip()
            break
    if rules.case == "upper":
        serial = serial.upper()
    elif rules.case == "lower":
        serial = serial.lower()
    if not serial:
        raise EmptySerialError(f"serial {raw!r} is empty after normalisation")
    return serial


def _deletion_table(chars: str) -> dict[int, None]:
    return dict.fromkeys(map(ord, chars))


def group_by_serial(
    records: Iterable[DeviceRecord], rules: SerialRules
) -> tuple[dict[str, list[DeviceRecord]], list[tuple[DeviceRecord, str]]]:
    """Records grouped by normalised serial, and those whose serial is empty (with why).

    Each record keeps its own ``serial_number`` as the source gave it, so a collision
    report can show the originals (``T8JKSZP`` and ``t8jkszp`` under ``case="upper"``).
    """
    groups: dict[str, list[DeviceRecord]] = {}
    empty: list[tuple[DeviceRecord, str]] = []
    for record in records:
        try:
            key = normalize_serial(record.serial_number, rules)
        except EmptySerialError as exc:
            empty.append((record, str(exc)))
            continue
        groups.setdefault(key, []).append(record)
    return groups, empty
