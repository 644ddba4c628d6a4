"""Where the NetBox connector keeps its marks between runs.

``ConnectorState`` is the interface (load the last saved dict, save a new one);
``JsonFileState`` keeps it in a small JSON file written atomically, ``MemoryState``
in memory (every new process starts with a full pull). The store can take the role
later by implementing the same two methods over its per-connector watermark column.

``PullMarks`` is the typed view of what is saved: the watermarks are NetBox's own
timestamps (``last_updated`` of devices, ``time`` of change-log entries), never this
machine's clock, so clock skew between syncd and NetBox cannot lose a change;
``last_full_pull`` is this machine's clock, since it only schedules the next full pull.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.jsonfile import read_object, write_atomic

STATE_VERSION = 1


class MemoryState:
    """``ConnectorState`` in memory: lost when the process ends."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def load(self) -> dict[str, Any]:
        """A copy of the saved dict."""
        return json.loads(json.dumps(self._data))  # type: ignore[no-any-return]

    def save(self, data: dict[str, Any]) -> None:
        """Keep a copy of ``data``."""
        self._data = json.loads(json.dumps(data))


class JsonFileState:
    """``ConnectorState`` in a JSON file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"JsonFileState({str(self.path)!r})"

    def load(self) -> dict[str, Any]:
        """The saved dict; ``{}`` if the file is missing or unreadable (then set aside)."""
        return read_object(self.path, "state file")

    def save(self, data: dict[str, Any]) -> None:
        """Write ``data`` to a temporary file beside the target, then rename it over."""
        write_atomic(self.path, data)


@dataclass(frozen=True, slots=True)
class PullMarks:
    """What the connector remembers between pulls.

    ``watermark``: the newest device ``last_updated`` seen (NetBox's clock).
    ``changes_mark``: the newest change-log ``time`` seen; ``None`` after a full pull
    that found the log empty (then every later entry is new).
    ``last_full_pull``: when the last committed full pull started (this machine's clock).
    ``fingerprint``: the filters and mapping the marks were made under; when they
    change, the next pull is a full one.
    """

    watermark: datetime | None = None
    changes_mark: datetime | None = None
    last_full_pull: datetime | None = None
    fingerprint: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PullMarks:
        """Read saved marks; anything unreadable counts as absent (a full pull follows)."""
        if data.get("version") != STATE_VERSION:
            return cls()
        return cls(
            watermark=_time(data.get("watermark")),
            changes_mark=_time(data.get("changes_mark")),
            last_full_pull=_time(data.get("last_full_pull")),
            fingerprint=str(data.get("fingerprint") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form ``ConnectorState.save`` takes."""
        return {
            "version": STATE_VERSION,
            "watermark": _iso(self.watermark),
            "changes_mark": _iso(self.changes_mark),
            "last_full_pull": _iso(self.last_full_pull),
            "fingerprint": self.fingerprint,
        }


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
