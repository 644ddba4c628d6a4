"""Regression tests for the data-safety defects found from outside (issue 7).

Each test replays what a hostile but fair user did against the sandbox over HTTP and
checks what that user would look at: the inventory, the write calls it received (the
sandbox's request log), and the audit rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from syncd.sandbox.testing import SandboxProcess
from tests.runsupport import RunEnv, method_counts, rows


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")


# -- 1. a row rejected for one bad cell keeps its device -------------------------------------


@pytest.mark.parametrize("grace", [{"orphan_grace_runs": 0, "orphan_grace_hours": 0}, {}])
def test_row_rejected_for_one_bad_cell_keeps_its_device(env: RunEnv, grace: dict[str, int]) -> None:
    env.policy = {**grace, "max_delete_share": 1.0}
    devices = rows(40)
    env.drop(devices)
    env.run()
    bad = devices[7]
    env.sandbox.clear_requests()

    broken = [dataclasses.replace(bad, ip_address="10.0.0.300") if r is bad else r for r in devices]
    for turn in range(4):  # past every grace: runs (3 by default), and hours are not the guard
        env.drop(broken if turn % 2 else broken[::-1])  # another content: not a duplicate
        result = env.run()
        assert [r.serial_number for r in result.rejects] == [bad.serial_number]
        assert "10.0.0.300" in result.rejects[0].reason
        assert result.plan.of_kind("delete") == []
        assert result.plan.counts["orphans_waiting"] == 0

    assert env.writes() == []
    assert env.devices()[bad.serial_number]["ip_address"] == bad.ip_address
    with env.runner() as runner:
        assert runner.store.load_candidates([bad.serial_number])
        (candidate,) = runner.store.load_candidates([bad.serial_number])
    assert candidate.tombstone is None
    assert [r.origin.rsplit(":", 1)[-1] for r in candidate.records] == ["9"]  # the good row


def test_fixed_row_after_a_reject_updates_and_a_dropped_row_still_orphans(env: RunEnv) -> None:
    env.policy = {"orphan_grace_runs": 0, "orphan_grace_hours": 0, "max_delete_share": 1.0}
    devices = rows(10)
    env.drop(devices)
    env.run()
    bad, gone = devices[2], devices[5]
    broken = [dataclasses.replace(bad, ip_address="10.0.0.300") if r is bad else r for r in devices]
    env.drop(broken)
    env.run()
    env.sandbox.clear_requests()

    fixed = [dataclasses.replace(bad, location="DC9") if r is bad else r for r in devices]
    env.drop([r for r in fixed if r is not gone])
    result = env.run()

    assert [op.serial_number for op in result.plan.of_kind("delete")] == [gone.serial_number]
    assert method_counts(env.writes()) == {"PATCH": 1, "DELETE": 1}
    assert env.devices()[bad.serial_number]["location"] == "DC9"
