"""Many serials in one buffer: a compact, read-only ``Sequence[str]``.

A first run, or a snapshot's stored rows, deals in a million serials at once. As
Python strings in a list they take some 70 MB; here they take their UTF-8 bytes plus
8 bytes each, and a serial becomes a ``str`` only while it is looked at.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt


class Serials(Sequence[str]):
    """Serials in one UTF-8 buffer, the ``i``-th between ``ends[i - 1] + 1`` and
    ``ends[i]`` (one separator byte between two; any byte, the ends say where)."""

    __slots__ = ("_data", "_ends")

    def __init__(self, data: bytes, ends: npt.NDArray[np.int64]) -> None:
        self._data = data
        self._ends = ends

    @classmethod
    def joined(cls, text: str, count: int, separator: str) -> Serials | None:
        """From ``count`` serials joined by ``separator`` (one ASCII character);
        ``None`` if one of them holds it (then they cannot be told apart)."""
        if not count:
            return cls.build(())
        data = text.encode()
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord(separator))
        if len(ends) != count - 1:
            return None
        return cls(data, np.append(ends, len(data)).astype(np.int64))

    @classmethod
    def build(cls, serials: Iterable[str]) -> Serials:
        """From serials as they stream (never all held as Python strings)."""
        data = bytearray()
        ends = array("q")
        for serial in serials:
            data += serial.encode()
            ends.append(len(data))
            data += b"\x00"
        return cls(bytes(data), np.frombuffer(ends, dtype=np.int64).copy())

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("serial index out of range")
        start = int(self._ends[index - 1]) + 1 if index else 0
        return self._data[start : int(self._ends[index])].decode()

    def __iter__(self) -> Iterator[str]:
        data, start = self._data, 0
        for end in self._ends.tolist():
            yield data[start:end].decode()
            start = end + 1

    def __repr__(self) -> str:
        return f"Serials({len(self)} serials)"
