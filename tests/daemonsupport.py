"""What the daemon tests check, from the outside: the sandbox's request log and final
state, the audit rows in the store, and the embedded broker's queue folder."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.sandbox.testing import RequestRecord
from syncd.store import ChangeRow, Store
from tests.runsupport import ORG_MAP, TYPE_MAP, Row, RunEnv

#: The detail of a 409 the daemon recognised as its own earlier POST (``apply``).
OWN_CREATE = "created by an earlier try of this change"


def peak_in_any_second(records: Sequence[RequestRecord]) -> int:
    """The most requests that started within any one second, from the log's start
    times (not the sandbox's own counter)."""
    starts = sorted(r.start for r in records)
    peak = 0
    first = 0
    for last, start in enumerate(starts):
        while starts[first] <= start - 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def all_changes(store_url: str) -> list[ChangeRow]:
    with Store.open(store_url) as store:
        return store.changes(limit=1_000_000)


def waiting(store_url: str) -> list[ChangeRow]:
    """Changes not final yet (pending, dispatched, applying)."""
    return [c for c in all_changes(store_url) if c.status in ("pending", "dispatched", "applying")]


def assert_applied_once(env: RunEnv, rows: Sequence[Row]) -> None:
    """Every row is in the inventory as the CSV says, created by exactly one POST: a
    POST sent again is only acceptable as a 409 the daemon recognised as its own."""
    devices = env.devices()
    assert set(devices) == {r.serial_number for r in rows}
    for row in rows:
        device = devices[row.serial_number]
        assert device["name"] == row.name, row
        assert device["location"] == row.location, row
        assert device["type"]["id"] == TYPE_MAP[row.device_type], row
        assert device["organization"]["id"] == ORG_MAP[row.organization], row
    posts = [r for r in env.writes() if r.method == "POST"]
    assert sum(r.status == 201 for r in posts) == len(rows)
    changes = all_changes(env.store_url)
    recognised = [
        c
        for c in changes
        if c.status == "applied"
        and (c.response or {}).get("status_code") == 409
        and OWN_CREATE in str((c.response or {}).get("detail"))
    ]
    assert sum(r.status == 409 for r in posts) == len(recognised)
    assert {r.status for r in posts} <= {201, 409}
    applied = [c for c in changes if c.status == "applied" and c.operation == "create"]
    assert sorted(c.serial_number for c in applied) == sorted(r.serial_number for r in rows)


def queued_changes(queue: Path) -> list[int]:
    """The change ids of the ``apply_change`` messages waiting in the embedded broker's
    queue folder."""
    ids: list[int] = []
    for path in queue.glob("*.msg"):
        message: dict[str, Any] = json.loads(path.read_text())
        if message.get("headers", {}).get("task") != "syncd.apply_change":
            continue
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        ids.append(int(args[0]))
    return sorted(ids)
