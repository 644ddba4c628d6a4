"""Many serials in one buffer: a compact, read-only ``Sequence[str]``.

A first run, or a snapshot's stored rows, deals in a million serials at once. As
Python strings in a list they take some 70 MB; here they take their UTF-8 bytes plus
8 bytes each, and a serial becomes a ``str`` only while it is looked at.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import islice
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


class SerialSet:
    """The distinct serials a stream gave, held compactly, with exact membership.

    A complete listing must know which present serials it did not return. A ``set``
    of a million serial strings holds about 100 MB while the listing runs; here each
    serial costs its text, its length and its ``hash`` (about 25 MB for a million).
    The ``hash`` of a ``str`` is cached on the string (the chunk's ``dict`` computed it
    already), and serials that share one are told apart by their texts, so counting
    and membership are exact. A serial given twice (a page shift repeats a device) is
    counted once. ``key`` stands for ``hash`` (tests give a weak one)."""

    __slots__ = ("_hashes", "_index", "_key", "_lengths", "_parts")

    def __init__(self, key: Callable[[str], int] = hash) -> None:
        self._key = key
        self._hashes: list[npt.NDArray[np.int64]] = []
        self._lengths: list[npt.NDArray[np.int64]] = []
        self._parts: list[str] = []
        self._index: _SerialIndex | None = None

    def update(self, serials: Collection[str]) -> None:
        """Add ``serials`` (iterated three times: a ``dict``'s keys, a list)."""
        count = len(serials)
        self._hashes.append(np.fromiter(map(self._key, serials), np.int64, count))
        self._lengths.append(np.fromiter(map(len, serials), np.int64, count))
        self._parts.append("".join(serials))
        self._index = None

    def _indexed(self) -> _SerialIndex:
        if self._index is None:
            self._parts = ["".join(self._parts)]
            self._hashes = [np.concatenate(self._hashes or [np.zeros(0, np.int64)])]
            self._lengths = [np.concatenate(self._lengths or [np.zeros(0, np.int64)])]
            self._index = _SerialIndex(self._key, self._hashes[0], self._lengths[0], self._parts[0])
        return self._index

    def __len__(self) -> int:
        return self._indexed().distinct

    def missing(self, serials: Iterable[str]) -> Iterator[str]:
        """Those of ``serials`` not in the set, in their order."""
        index = self._indexed()
        iterator = iter(serials)
        while chunk := list(islice(iterator, _MISSING_CHUNK)):
            yield from index.missing(chunk)


_MISSING_CHUNK = 50_000


class _SerialIndex:
    """``SerialSet`` sorted by hash: the position of every hash, and the texts."""

    def __init__(
        self,
        key: Callable[[str], int],
        values: npt.NDArray[np.int64],
        sizes: npt.NDArray[np.int64],
        text: str,
    ) -> None:
        self.key = key
        self.order = np.argsort(values, kind="stable")
        self.sorted = values[self.order]
        self.starts = np.cumsum(sizes) - sizes
        self.sizes = sizes
        self.text = text
        shared = np.flatnonzero(self.sorted[1:] == self.sorted[:-1])
        repeats = 0
        if len(shared):  # rare (a serial given twice, or two sharing a hash): compare texts
            firsts = shared[np.r_[True, np.diff(shared) > 1]]
            for first in firsts.tolist():
                group = self._group(first)
                repeats += len(group) - len(set(group))
        self.distinct = len(values) - repeats

    def _text(self, position: int) -> str:
        item = int(self.order[position])
        start = int(self.starts[item])
        return self.text[start : start + int(self.sizes[item])]

    def _group(self, first: int) -> list[str]:
        """The texts of the serials sharing the hash at sorted ``first``."""
        end = first
        while end < len(self.sorted) and self.sorted[end] == self.sorted[first]:
            end += 1
        return [self._text(position) for position in range(first, end)]

    def missing(self, serials: list[str]) -> list[str]:
        count = len(self.sorted)
        if not count:
            return list(serials)
        wanted = np.fromiter(map(self.key, serials), dtype=np.int64, count=len(serials))
        found = np.searchsorted(self.sorted, wanted)
        inside = np.minimum(found, count - 1)
        hit = (self.sorted[inside] == wanted).tolist()
        items = self.order[inside]
        starts = self.starts[items]
        text = self.text
        gone = []
        for serial, is_hit, start, end, first in zip(
            serials,
            hit,
            starts.tolist(),
            (starts + self.sizes[items]).tolist(),
            found.tolist(),
            strict=True,
        ):
            # the first serial of that hash is nearly always the one; else its group
            if is_hit and (text[start:end] == serial or serial in self._group(first)):
                continue
            gone.append(serial)
        return gone
