"""The fast path for the common row: every cell printable, nothing to report.

Most rows of a procurement export are plain: as wide as the header, no control
character, tab or line break in any cell, a serial and a name within the API's
limits, values already in canonical form. ``FastRow`` turns such a row into its
record with one printability check over the whole row instead of one per cell, and
gives up (``None``) at the first sign of anything else, so that ``RowConverter``'s full
path, which names every problem, handles it. It never rejects a row and never
accepts one the full path would reject: a test reads the whole corpus both ways and
compares records, rejects and line numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.csv_drop.values import ACTION_WORDS
from syncd.records import DeviceRecord

if TYPE_CHECKING:
    from connectors.csv_drop.reader import RowConverter

_SERIAL_LIMIT = 255


class FastRow:
    """``RowConverter``'s common case: a record, or ``None`` to take the full path."""

    def __init__(self, converter: RowConverter, serial_limit: int = _SERIAL_LIMIT) -> None:
        self.source = converter.source
        self.label = converter.label
        self.width = converter.width
        self.delta = converter.delta
        self.serial = converter.serial
        self.serial_limit = serial_limit
        self.action = converter.action
        self.texts = tuple(
            (index, name, clear, limit)
            for index, name, clear, _column, _multiline, limit in converter.texts
        )
        self.typed = tuple(
            (index, name, parse, clear) for index, name, parse, _column, clear in converter.typed
        )
        self.required = tuple(index for index, _column in converter.required)
        self.extra = converter.extra

    def __call__(self, row: list[str], line: int) -> DeviceRecord | None:  # noqa: PLR0911, PLR0912
        """The row starting on physical line ``line`` as a record, if it is plain."""
        if len(row) != self.width or not "".join(row).isprintable():
            return None
        serial = row[self.serial].strip()
        if not serial or len(serial) > self.serial_limit:
            return None
        origin = f"{self.label}:{line}"
        if self.action is not None:
            cell = row[self.action].strip()
            if cell:
                action = ACTION_WORDS.get(cell.casefold())
                if action is None:
                    return None
                if action == "delete":
                    return DeviceRecord(
                        source=self.source,
                        serial_number=serial,
                        origin=origin,
                        wanted=False,
                        action="delete",
                    )
            elif self.delta:
                return None
        values: dict[str, Any] = {}
        for index, name, clear, limit in self.texts:
            cell = row[index].strip()
            if cell:
                if limit is not None and len(cell) > limit:
                    return None
                values[name] = cell
            elif clear:
                values[name] = ""
        for index, name, parse, clear in self.typed:
            cell = row[index].strip()
            if cell:
                try:
                    values[name] = parse(cell)
                except ValueError:
                    return None
            elif clear:
                values[name] = ""
        for index in self.required:
            if not row[index].strip():
                return None
        if self.extra:
            values["extra"] = tuple(
                (name, cell) for index, name in self.extra if (cell := row[index].strip())
            )
        return DeviceRecord(source=self.source, serial_number=serial, origin=origin, **values)
