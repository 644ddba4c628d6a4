"""Memory of the last file content the connector accepted (by SHA-256).

A file is a duplicate only if it repeats the *last* accepted content: that file is
what the store holds now, so applying it again would change nothing. Any older
content is not a duplicate: in snapshot mode files A, B, A must leave A's list in
the store (skipping the second A would orphan devices it lists and B does not), and
in delta mode "delete X", "upsert X", "delete X" must delete X. So the ledger keeps
one entry, the newest, and the connector compares with that one only.

Where it lives decides what "the store holds it" means, so it lives with the data:

- ``StateLedger``, when syncd runs the connector (it hands it a ``ConnectorState``
  backed by the store's per-connector ``source_state.watermark``): the connector only
  reads it; each accepted batch carries the new entry as its ``mark``, which the
  ingest step saves in the very transaction that merges the batch. A fresh store, or
  another database, has no entry and skips nothing; two processes racing on one inbox
  leave the entry of the batch merged last.
- ``JsonLedger``, for a connector used without a store (tests, scripts): a small JSON
  file, by default in the inbox, written by ``commit()`` before the file moves. syncd
  never reads it, so one left in an inbox by an older version makes no store skip
  anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from connectors.base import ConnectorState
from connectors.jsonfile import read_object, write_atomic

#: The saved form (JSON file and connector state alike). Version 1 kept many checksums
#: in an order its file did not preserve; such a file is read as "nothing accepted yet"
#: (the next file is ingested even if it repeats the last one, which changes nothing).
VERSION = 2


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The content a file carried (``sha256``), which file it was and where it went
    (``file``, ``stored_as``: names fit for people, never raw bytes; ``stored_as`` is
    empty in a mark saved before the file moved), when (UTC, ISO 8601), and how many
    records it gave."""

    sha256: str
    file: str
    stored_as: str
    at: str
    records: int


class IngestLedger(Protocol):
    """The last file content this connector accepted."""

    def last(self) -> LedgerEntry | None:
        """The newest entry, or ``None`` if nothing was accepted yet."""
        ...

    def record(self, entry: LedgerEntry) -> None:
        """Make ``entry`` the newest (replacing the one before)."""
        ...


def ledger_state(entry: LedgerEntry) -> dict[str, Any]:
    """``entry`` as the ledger's saved form (the JSON file's, and the connector state's)."""
    return {"version": VERSION, "last": asdict(entry)}


def ledger_entry(data: dict[str, Any]) -> LedgerEntry | None:
    """The entry in a saved form; ``None`` if there is none, or of another version."""
    raw = data.get("last") if data.get("version") == VERSION else None
    return _entry(raw) if isinstance(raw, dict) else None


class StateLedger:
    """``IngestLedger`` over a ``ConnectorState``: the store, when syncd runs the connector.

    ``record`` is there for callers that keep the state themselves; syncd saves the
    entry through the batch's ``mark``, with the batch.
    """

    def __init__(self, state: ConnectorState) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"StateLedger({self.state!r})"

    def last(self) -> LedgerEntry | None:
        """The newest entry, or ``None``."""
        return ledger_entry(self.state.load())

    def record(self, entry: LedgerEntry) -> None:
        """Replace the newest entry."""
        self.state.save(ledger_state(entry))


class JsonLedger:
    """``IngestLedger`` in a JSON file: ``{"version": 2, "last": {sha256, file, ...}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"JsonLedger({str(self.path)!r})"

    def last(self) -> LedgerEntry | None:
        """The newest entry, or ``None``."""
        return ledger_entry(read_object(self.path, "ingest ledger"))

    def record(self, entry: LedgerEntry) -> None:
        """Replace the newest entry. The lock keeps two processes from sharing the
        temporary file ``write_atomic`` writes through."""
        with self._locked():
            write_atomic(self.path, ledger_state(entry))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _entry(raw: dict[str, Any]) -> LedgerEntry | None:
    sha256 = raw.get("sha256")
    if not isinstance(sha256, str) or not sha256:
        return None
    records = raw.get("records", 0)
    return LedgerEntry(
        sha256=sha256,
        file=str(raw.get("file", "")),
        stored_as=str(raw.get("stored_as", "")),
        at=str(raw.get("at", "")),
        records=records if isinstance(records, int) else 0,
    )
