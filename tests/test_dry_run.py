"""A dry run (``syncd plan``) plans exactly as a run would and leaves nothing behind: no
run number taken, no batch or source row stored, no open conflict recorded, the dropped
file still in the inbox, unclaimed; on SQLite and on PostgreSQL (one rolled-back
transaction holds everything it did)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from syncd.sandbox.testing import SandboxProcess
from tests.pg import db_url  # noqa: F401 - pytest fixture
from tests.runsupport import RunEnv, rows


def test_a_dry_run_plans_as_a_run_and_keeps_nothing(
    sandbox: SandboxProcess,
    tmp_path: Path,
    db_url: str,  # noqa: F811 - the fixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=db_url)
    first = rows(2)
    env.drop(first)
    assert env.run().status == "done"
    with env.sandbox.client() as api:
        assert api.patch("inventory_device_serial/SN00001/", json={"name": "by-hand"}).is_success
    wanted = [first[0], dataclasses.replace(first[1], location="DC2"), *rows(1, start=3)]
    dropped = env.drop(wanted)
    env.sandbox.clear_requests()

    with env.runner() as runner:
        dry = runner.run(dry_run=True, trigger="plan", measure_drift=True)
        assert dry.run_id == 0
        kinds = sorted((op.kind, op.serial_number) for op in dry.plan.operations)
        assert kinds == [("conflict", "SN00001"), ("create", "SN00003"), ("update", "SN00002")]
        assert dry.drift is not None
        assert dry.drift.conflicts == 1
        store = runner.store
        assert [run.id for run in store.runs(10)] == [1]
        assert store.source_rows("SN00003") == []
        assert store.open_conflicts() == []
    assert dropped.exists()
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["drop-001.csv"]
    assert env.writes() == []

    real = env.run()
    assert real.run_id == 2
    assert sorted((op.kind, op.serial_number) for op in real.plan.operations) == kinds
    assert not dropped.exists()
    with env.runner() as runner:
        assert [c.serial_number for c in runner.store.open_conflicts()] == ["SN00001"]
