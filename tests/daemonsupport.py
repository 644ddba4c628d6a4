"""What the daemon tests check, from the outside: the sandbox's request log and final
state, the audit rows in the store, and the embedded broker's queue folder."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.sandbox.testing import RequestRecord, SandboxToken
from syncd.store import ChangeRow, Store
from tests.runsupport import ORG_MAP, TYPE_MAP, Row, RunEnv

#: The detail of a 409 the daemon recognised as its own earlier POST (``apply``).
OWN_CREATE = "created by an earlier try of this change"


def busiest_second(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """The most requests that started within any one second, from the log's start
    times (not the sandbox's own counter), oldest first."""
    ordered = sorted(records, key=lambda r: r.start)
    best: tuple[int, int] = (0, 0)
    first = 0
    for last, record in enumerate(ordered):
        while ordered[first].start <= record.start - 1.0:
            first += 1
        if last + 1 - first > best[1] - best[0]:
            best = (first, last + 1)
    return ordered[best[0] : best[1]]


def peak_in_any_second(records: Sequence[RequestRecord]) -> int:
    """How many requests ``busiest_second`` found."""
    return len(busiest_second(records))


def describe(records: Sequence[RequestRecord]) -> str:
    """Requests as ``+0.123s METHOD status`` lines, relative to the first."""
    if not records:
        return "(none)"
    zero = records[0].start
    return "\n".join(f"+{r.start - zero:.3f}s {r.method} {r.status}" for r in records)


def all_changes(store_url: str) -> list[ChangeRow]:
    with Store.open(store_url) as store:
        return store.changes(limit=1_000_000)


def waiting(store_url: str) -> list[ChangeRow]:
    """Changes not final yet (pending, dispatched, applying)."""
    return [c for c in all_changes(store_url) if c.status in WAITING]


def settled(store_url: str, creates: int) -> bool:
    """``creates`` creates applied and nothing else on its way: the daemon is done."""
    changes = all_changes(store_url)
    applied = sum(c.operation == "create" and c.status == "applied" for c in changes)
    return applied == creates and not any(c.status in WAITING for c in changes)


def changes_state(store_url: str) -> str:
    """The changes by operation and status, and the first few still on their way (for
    a test's failure message)."""
    changes = all_changes(store_url)
    counts = Counter((c.operation, c.status) for c in changes)
    stuck = [
        f"#{c.id} {c.operation} {c.serial_number} {c.status} attempts={c.attempts} "
        f"error={c.error!r}"
        for c in changes
        if c.status in WAITING
    ][:5]
    return f"{dict(counts)} waiting: {stuck}"


#: Statuses of a change on its way to the API.
WAITING = ("pending", "dispatched", "applying")


def reader(env: RunEnv) -> SandboxToken:
    """The token the tests read the inventory with: not syncd's, so the reads neither
    use syncd's budget at the sandbox nor meet its throttle (the session's second
    token, scoped to the organization the test rows use)."""
    token = env.sandbox.tokens[1]
    assert token.organizations is None or ORG_MAP["Acme Corp IT"] in token.organizations
    return token


def assert_applied_once(env: RunEnv, rows: Sequence[Row]) -> None:
    """Every row is in the inventory as the CSV says, created by exactly one POST: a
    POST sent again is only acceptable as a 409 the daemon recognised as its own."""
    devices = env.devices(reader(env))
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
