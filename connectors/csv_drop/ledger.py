"""Memory of ingested file contents (by SHA-256), so one content is never applied twice.

``IngestLedger`` is the interface the connector needs; ``JsonLedger`` keeps it in a
small JSON file beside the inbox, written atomically under a lock so two syncd
processes sharing an inbox do not lose each other's entries. The store can take
this role later by implementing the same two methods.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from connectors.jsonfile import read_object, write_atomic

#: The JSON ledger keeps this many newest entries; older contents may be ingested again.
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Which file carried a content, where it went, and when (UTC, ISO 8601)."""

    file: str
    stored_as: str
    at: str
    records: int


class IngestLedger(Protocol):
    """Checksums of file contents already ingested."""

    def seen(self, sha256: str) -> LedgerEntry | None:
        """The entry for this content, or ``None`` if it was never ingested."""
        ...

    def record(self, sha256: str, entry: LedgerEntry) -> None:
        """Remember that this content was ingested."""
        ...


class JsonLedger:
    """``IngestLedger`` in a JSON file: ``{"version": 1, "files": {sha256: entry}}``."""

    def __init__(self, path: Path, *, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries

    def seen(self, sha256: str) -> LedgerEntry | None:
        """The entry for this content, or ``None``."""
        raw = self._load().get(sha256)
        return _entry(raw) if isinstance(raw, dict) else None

    def record(self, sha256: str, entry: LedgerEntry) -> None:
        """Add the entry (newest last), dropping the oldest beyond ``max_entries``."""
        with self._locked():
            files = self._load()
            files.pop(sha256, None)
            files[sha256] = asdict(entry)
            while len(files) > self.max_entries:
                del files[next(iter(files))]
            self._save(files)

    def _load(self) -> dict[str, Any]:
        data = read_object(self.path, "ingest ledger")
        files = data.get("files", {})
        if not isinstance(files, dict):
            return {}
        return files

    def _save(self, files: dict[str, Any]) -> None:
        write_atomic(self.path, {"version": 1, "files": files})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _entry(raw: dict[str, Any]) -> LedgerEntry:
    records = raw.get("records", 0)
    return LedgerEntry(
        file=str(raw.get("file", "")),
        stored_as=str(raw.get("stored_as", "")),
        at=str(raw.get("at", "")),
        records=records if isinstance(records, int) else 0,
    )
