"""The outbox drained by several changes in flight at once, in order per serial.

Against the sandbox over HTTP: the request log's start times and durations show the
overlap; the store shows that one serial's changes never go out together.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.engine import FieldChange, Operation, Plan
from syncd.records import DeviceRecord
from syncd.sandbox.testing import RequestRecord, SandboxProcess
from syncd.store import Store
from tests.runsupport import RunEnv, method_counts, rows


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")


def _most_at_once(records: list[RequestRecord]) -> int:
    edges = sorted(
        [(r.start, 1) for r in records] + [(r.start + r.duration_ms / 1000, -1) for r in records]
    )
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_changes_go_out_several_at_once(env: RunEnv) -> None:
    env.outbox = {"concurrency": 6}
    env.sandbox.set_faults(latency_ms=150, latency_rate=1.0)
    devices = rows(24)
    env.drop(devices)

    result = env.run()

    assert result.status == "done"
    assert method_counts(env.writes()) == {"POST": 24}
    assert set(env.devices()) == {r.serial_number for r in devices}
    # each POST is held 150 ms by the sandbox: six threads overlap them
    assert _most_at_once(env.writes()) >= 3


def test_one_change_at_a_time(env: RunEnv) -> None:
    env.outbox = {"concurrency": 1}
    env.sandbox.set_faults(latency_ms=50, latency_rate=1.0)
    env.drop(rows(6))

    env.run()

    assert _most_at_once(env.writes()) == 1


def _update(serial: str, after: str) -> Operation:
    return Operation("update", serial, {"name": FieldChange("old", after)}, "test", ("csv",))


def test_a_serials_changes_are_claimed_in_order_one_at_a_time(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.store_batch("csv", "snapshot", "a", [DeviceRecord("csv", "A", name="x")])
        first = store.begin_run("test", "fp")
        store.candidate_serials(first)
        store.record_plan(first, Plan(operations=[_update("A", "v1")]))
        (older,) = store.pending_changes()
        assert store.claim(older.id, owner="someone") == "claimed"
        second = store.begin_run("test", "fp")
        store.force_replan(["A"])
        store.candidate_serials(second)
        store.record_plan(second, Plan(operations=[_update("A", "v2")]))
        (newer,) = store.pending_changes()

        assert store.claim(newer.id, owner="me") == "busy"  # the older one is in flight
        store.complete_change(older.id, "applied")
        assert store.claim(newer.id, owner="me") == "claimed"
        assert store.claim(newer.id, owner="other") == "gone"
