"""A snapshot's shortcut: rows whose content the store already holds are not staged.

Most rows of a connector's next snapshot say what the store already holds: the next
CSV drop repeats the last one with a few edits, a NetBox pull lists the same devices.
Staging them (one SQL row each, payload included) and comparing them in SQL cost most
of an ingest. Instead, when a snapshot starts, the content hashes of the connector's
stored first rows (``seq`` 0) are read in one value into a sorted array, and their
serials in another into one buffer (``StoredHashes``), and each block of incoming rows
is looked up there in one vectorised search. A row whose hash is there says exactly
what its serial's first stored row says (the hash covers the serial, ``wanted``, the
action and the payload bytes): it is *skipped*, not staged, and its stored row is
marked as listed. Then:

- **absences**: a stored first row nobody listed, of a serial with no staged row, is
  gone (unless a reject names the serial: that device is still in the source); a
  stored row ``seq`` > 0 is gone when fewer rows than ``seq + 1`` list its serial;
- **collisions**: a serial listed more than once (a skipped row and a staged one, or
  the same row twice) has all its rows staged, the skipped ones copied back from the
  stored row they matched, so that their order, and so their ``seq``, is the source's.

A skipped row keeps its stored origin and batch: the place its content was read from,
which still holds it. A match missed by the search (two stored hashes sharing their
first 64 bits) only stages the row, which the SQL merge then finds unchanged.

The array is the store as the batch began: the merge checks, under its write lock,
that no other batch of the connector was stored since (``ConcurrentBatchError``
otherwise: nothing is stored, and the source is read again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.store.serials import Serials

_U64 = npt.NDArray[np.uint64]
_Mask = npt.NDArray[np.bool_]

# The hashes (32 hex digits each, as syncd writes them) and the serials (separated by a
# unit separator, checked below) of a connector's first rows, each in one value, and how
# many first rows hold a hash of any other form (read apart, ``_ODD``, only when there
# are some; never matched): one scan. SQLite reads the table straight through (``NOT
# INDEXED``) rather than in the primary key's order, which jumps about the file for a
# million rows written in a file's order (twice as slow at 1M).
_SEPARATOR = "\x1f"
_HASHES = {
    "sqlite": "SELECT group_concat(CASE WHEN length(content_hash) = 32 THEN content_hash END, ''), "
    "group_concat(CASE WHEN length(content_hash) = 32 THEN serial_number END, char(31)), "
    "count(CASE WHEN length(content_hash) = 32 THEN 1 END), count(*) "
    "FROM source_record NOT INDEXED WHERE connector = :connector AND seq = 0",
    "postgresql": "SELECT string_agg(content_hash, '') FILTER (WHERE length(content_hash) = 32), "
    "string_agg(serial_number, chr(31)) FILTER (WHERE length(content_hash) = 32), "
    "count(*) FILTER (WHERE length(content_hash) = 32), count(*) FROM source_record "
    "WHERE connector = :connector AND seq = 0",
}
_ODD = (
    "SELECT serial_number FROM source_record "
    "WHERE connector = :connector AND seq = 0 AND length(content_hash) <> 32"
)
_ONE_BY_ONE = (
    "SELECT serial_number, content_hash FROM source_record "
    "WHERE connector = :connector AND seq = 0 AND length(content_hash) = 32"
)


def _plain(digest: str) -> bool:
    """Whether ``digest`` has the form syncd writes (32 hex digits)."""
    try:
        return len(bytes.fromhex(digest)) == 16
    except ValueError:
        return False


def _split(raw: bytes) -> tuple[_U64, _U64]:
    """The two 64-bit halves of each 16-byte digest written one after another."""
    pairs = np.frombuffer(raw, dtype=">u8").reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


@dataclass(slots=True)
class DigestSet:
    """16-byte digests, sorted by their first 64 bits, looked up many at a time (one
    vectorised search).

    A miss is certain; a hit compares all 128 bits. Two stored digests that share their
    first 64 bits (about one chance in 10^7 at a million) can hide a hit on one of
    them: the caller then takes its slow, exact path for that row.
    """

    high: _U64
    low: _U64
    #: ``order[i]``: where the ``i``-th smallest digest was in the sequence given.
    order: npt.NDArray[np.intp]

    @classmethod
    def of(cls, raw: bytes) -> DigestSet:
        high, low = _split(raw)
        order = np.argsort(high, kind="stable")  # a radix sort: 3x a two-key lexsort
        return cls(high[order], low[order], order)

    def __len__(self) -> int:
        return len(self.high)

    def find(self, raw: bytes) -> tuple[_Mask, npt.NDArray[np.intp]]:
        """For each digest of ``raw``: whether it is in the set, and its sorted index
        (meaningful only where it is)."""
        high, low = _split(raw)
        index = np.searchsorted(self.high, high)
        inside = index < len(self.high)
        at = np.where(inside, index, 0)
        found: _Mask = inside & (self.high[at] == high) & (self.low[at] == low)
        return found, at


#: Rows checked to prove the two aggregates read the rows in the same order.
_PROBES = 16


def _aligned(conn: Connection, params: dict[str, str], serials: Serials, raw: bytes) -> bool:
    """Whether the serials and the hashes read as two aggregates of one query line up:
    the ``i``-th serial's stored hash is the ``i``-th hash, checked at the first, the
    last and evenly spaced rows. One scan feeds both (no database is known to do
    otherwise); were they ever out of step, an absence would name the wrong serial, so
    this costs a few lookups, and any mismatch reads the rows one by one instead."""
    count = len(serials)
    if not count:
        return True
    probe = sa.text(
        "SELECT content_hash FROM source_record "
        "WHERE connector = :connector AND serial_number = :serial AND seq = 0"
    )
    for index in sorted({0, count - 1, *(count * k // _PROBES for k in range(_PROBES))}):
        stored = conn.execute(probe, {**params, "serial": serials[index]}).scalar()
        if stored != raw[16 * index : 16 * index + 16].hex():
            return False
    return True


def last_batch(conn: Connection, connector: str) -> int:
    """The id of the connector's newest accepted batch (0 if none): the only writer of
    its stored rows, so an unchanged id means unchanged rows."""
    value = conn.execute(
        sa.text("SELECT max(id) FROM source_batch WHERE connector = :connector AND accepted"),
        {"connector": connector},
    ).scalar()
    return int(value or 0)


@dataclass(slots=True)
class StoredHashes:
    """The connector's stored first rows, by content hash, and what the batch matched."""

    #: Content hashes of the stored first rows, and their serials (in the order read).
    digests: DigestSet
    serials: Serials
    #: The newest accepted batch of the connector when these were read.
    mark: int
    #: Serials of stored hashes not of the usual form (none today): never matched.
    odd: list[str] = field(default_factory=list)
    #: Per stored hash: the ``ord`` of the first incoming row that matched it (0: none).
    first: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: Skipped rows of a hash matched more than once, and each such hash's serial.
    repeated: list[tuple[int, str]] = field(default_factory=list)
    repeated_at: dict[int, str] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: Connection, dialect: str, connector: str) -> StoredHashes:
        """Read the hashes and serials as two strings (no Python object per row)."""
        mark = last_batch(conn, connector)
        params = {"connector": connector}
        row = conn.execute(sa.text(_HASHES[dialect]), params).one()
        count = int(row[2])
        odd = list(conn.execute(sa.text(_ODD), params).scalars()) if row[3] > count else []
        serials = Serials.joined(row[1] or "", count, _SEPARATOR)
        try:
            raw = bytes.fromhex(row[0] or "")
        except ValueError:  # a 32-character hash that is not hex: all of them one by one
            raw, serials = b"", None
        del row  # the two long strings: a million rows' worth, not to be held twice
        if serials is not None and not _aligned(conn, params, serials, raw):
            serials = None
        digests = DigestSet.of(raw)
        del raw
        if serials is None:  # or a serial holding the separator, or the two out of step
            digests, serials, rejected = cls._one_by_one(conn, params)
            odd += rejected
        return cls(digests, serials, mark, odd, np.zeros(len(digests), np.int64))

    @staticmethod
    def _one_by_one(
        conn: Connection, params: dict[str, str]
    ) -> tuple[DigestSet, Serials, list[str]]:
        raw: list[bytes] = []
        serials: list[str] = []
        odd: list[str] = []
        for serial, digest in conn.execute(sa.text(_ONE_BY_ONE), params):
            try:
                raw.append(bytes.fromhex(digest))
                serials.append(serial)
            except ValueError:
                odd.append(serial)
        return DigestSet.of(b"".join(raw)), Serials.build(serials), odd

    def _find(self, digests: Sequence[str]) -> tuple[_Mask, npt.NDArray[np.intp]]:
        return self.digests.find(bytes.fromhex("".join(digests)))

    def skip(self, serials: Sequence[str], digests: Sequence[str], first_ord: int) -> _Mask:
        """Which of these incoming rows (``ord`` from ``first_ord`` on) to skip: those
        whose content is a stored first row's. Records what they matched."""
        if not len(self.digests) or not digests:
            return np.zeros(len(digests), dtype=np.bool_)
        found, at = self._find(digests)
        rows = np.flatnonzero(found)
        if not len(rows):
            return found
        where = at[rows]
        _, firsts = np.unique(where, return_index=True)
        again = np.ones(len(rows), dtype=np.bool_)
        again[firsts] = False  # the first match of a hash within this block ...
        again |= self.first[where] > 0  # ... unless a block before matched it
        fresh = rows[~again]
        self.first[at[fresh]] = fresh + first_ord
        for row in rows[again].tolist():
            self.repeated.append((row + first_ord, serials[row]))
            self.repeated_at[int(at[row])] = serials[row]
        return found

    def backfill(self, staged: Iterable[tuple[str, str]]) -> list[tuple[int, str]]:
        """``(ord, serial)`` of the skipped rows to stage after all: those of the serials
        listed more than once. ``staged`` gives ``(serial, stored first row's hash)``
        for the serials with staged rows."""
        rows = dict(self.repeated)
        for index, serial in self.repeated_at.items():
            rows[int(self.first[index])] = serial
        pairs = [(serial, digest) for serial, digest in staged if _plain(digest)]
        if pairs and len(self.digests):
            found, at = self._find([digest for _, digest in pairs])
            for (serial, _), hit, index in zip(pairs, found.tolist(), at.tolist(), strict=True):
                if hit and self.first[index]:
                    rows[int(self.first[index])] = serial
        return sorted(rows.items())

    def unmatched(self) -> list[tuple[str]]:
        """The serials of the stored first rows no incoming row matched (as 1-tuples)."""
        read_at = self.digests.order[np.flatnonzero(self.first == 0)]
        return [(self.serials[int(i)],) for i in read_at.tolist()] + [(s,) for s in self.odd]
