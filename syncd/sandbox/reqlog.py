"""The request log and the counters behind ``GET /_sandbox/stats``.

Every request under ``/api/v1`` is recorded: method, path (as sent, still
percent-encoded), query string, status, start time (epoch seconds), duration (ms)
the injected fault if any, and the serial a write was for (from the path, or from
the body of a create; ``None`` when there is none). Headers are never recorded, so the token is not
either. The log is kept in memory (the newest ``max_entries``) and, if a file is
given, appended to it as JSON lines. The counters cover every request since the
last clear, also those that fell out of the in-memory window.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One API request."""

    method: str
    path: str
    query: str
    status: int
    start: float
    duration_ms: float
    fault: str | None = None
    serial: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as the control API and the log file show it."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "start": self.start,
            "duration_ms": self.duration_ms,
            "fault": self.fault,
            "serial": self.serial,
        }


class RequestLog:
    """In-memory request log, optional JSON-lines file, and running statistics."""

    def __init__(self, *, path: Path | None = None, max_entries: int = 1_000_000) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=max_entries)
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path else None
        self._window: deque[float] = deque()
        self.clear()

    def clear(self) -> None:
        """Forget every entry and zero the counters (the file is kept)."""
        self._entries.clear()
        self._window.clear()
        self.total = 0
        self.writes = 0
        self.applied_writes = 0
        self.peak_per_second = 0
        self.by_method: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.by_fault: Counter[str] = Counter()

    def started(self, monotonic: float) -> None:
        """Count a request's start for the peak rate (max starts within any 1 s)."""
        window = self._window
        window.append(monotonic)
        horizon = monotonic - 1.0
        while window[0] <= horizon:
            window.popleft()
        self.peak_per_second = max(self.peak_per_second, len(window))

    def record(self, entry: LogEntry, *, applied_write: bool) -> None:
        """Add a finished (or dropped) request."""
        self._entries.append(entry)
        self.total += 1
        self.by_method[entry.method] += 1
        self.by_status[entry.status] += 1
        if entry.fault:
            self.by_fault[entry.fault] += 1
        if entry.method in WRITE_METHODS:
            self.writes += 1
        if applied_write:
            self.applied_writes += 1
        if self._file is not None:
            self._file.write(json.dumps(entry.to_json()) + "\n")
            self._file.flush()

    def entries(self) -> list[dict[str, Any]]:
        """The in-memory entries, oldest first."""
        return [e.to_json() for e in self._entries]

    def stats(self) -> dict[str, Any]:
        """``{"total", "by_method", "by_status", "writes", "peak_per_second", ...}``."""
        return {
            "total": self.total,
            "by_method": dict(self.by_method),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "writes": self.writes,
            "applied_writes": self.applied_writes,
            "peak_per_second": self.peak_per_second,
            "faults": dict(self.by_fault),
        }

    def close(self) -> None:
        """Close the log file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None
