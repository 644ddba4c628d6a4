"""``syncd revert``: the inverse of a run, from its recorded before-values, against the
sandbox over HTTP. Each test compares the inventory with what it was before the run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from syncd.sandbox.testing import SandboxProcess
from syncd.service.revert import revert
from tests.runsupport import RunEnv, load_form, method_counts, rows

#: Server-managed fields: not part of what a revert restores.
_SERVER_FIELDS = ("created_at", "updated_at", "last_status_change", "pending_changes")


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")
    env.policy = {"orphan_grace_runs": 0, "orphan_grace_hours": 0, "max_delete_share": 1.0}
    return env


def state(env: RunEnv) -> dict[str, dict[str, Any]]:
    """Every device, detail shape, without the fields the server manages."""
    out = {}
    with env.sandbox.client() as api:
        for serial in env.devices():
            device = api.get(f"inventory_device_serial/{serial}/").json()
            out[serial] = {k: v for k, v in device.items() if k not in _SERVER_FIELDS}
    return out


def test_revert_of_updates_restores_the_inventory_exactly(env: RunEnv) -> None:
    devices = rows(5)
    env.drop(devices)
    env.run()
    before = state(env)
    moved = [dataclasses.replace(r, location="DC9", name=f"{r.name}-x") for r in devices[:2]]
    env.drop(moved + devices[2:])
    second = env.run()
    assert state(env) != before
    env.sandbox.clear_requests()

    with env.runner() as runner:
        outcome = revert(runner, run_id=second.run_id)

    assert outcome.refused == []
    assert outcome.run.status == "done"
    assert method_counts(env.writes()) == {"PATCH": 2}
    assert state(env) == before
    with env.runner() as runner:
        run = runner.store.run(outcome.run.run_id)
        assert env.run().plan.writes() == []  # the restored values stand
    assert run is not None
    assert run.trigger == "revert"
    assert run.summary["revert_of"] == {"run": second.run_id, "change": None}


def test_a_device_edited_since_is_refused_not_overwritten(env: RunEnv) -> None:
    devices = rows(3)
    env.drop(devices)
    env.run()
    env.drop([dataclasses.replace(r, location="DC9") for r in devices])
    second = env.run()
    edited = devices[1].serial_number
    with env.sandbox.client() as api:
        assert api.patch(f"inventory_device_serial/{edited}/", json={"location": "HAND"}).is_success
    env.sandbox.clear_requests()

    with env.runner() as runner:
        outcome = revert(runner, run_id=second.run_id)

    [refusal] = outcome.refused
    assert refusal.serial_number == edited
    assert "location was changed in the inventory since" in refusal.reason
    assert env.devices()[edited]["location"] == "HAND"  # kept
    assert method_counts(env.writes()) == {"PATCH": 2}  # the two others restored
    assert {
        env.devices()[r.serial_number]["location"] for r in devices if r.serial_number != edited
    } == {"DC1"}


def test_revert_of_a_delete_makes_the_device_again_as_it_was(env: RunEnv) -> None:
    devices = rows(4)
    env.drop(devices)
    env.run()
    before = state(env)
    env.drop(devices[1:])
    deleting = env.run()
    assert [op.kind for op in deleting.plan.writes()] == ["delete"]
    env.sandbox.clear_requests()

    with env.runner() as runner:
        outcome = revert(runner, run_id=deleting.run_id)

    assert outcome.refused == []
    assert method_counts(env.writes()) == {"POST": 1}
    assert state(env) == before


def test_revert_of_creates_is_gated_and_refuses_what_a_later_run_changed(env: RunEnv) -> None:
    env.policy = {**env.policy, "max_delete_share": 0.1}
    created = rows(6)
    old = rows(10, prefix="OLD")
    env.sandbox.load(load_form([dataclasses.replace(r, location="OLDLOC") for r in old]))
    env.drop([*created, *old])
    first = env.run()  # 6 creates, 10 adoptions
    later = dataclasses.replace(created[0], location="DC7")
    env.drop([later, *created[1:], *old])
    env.run()
    env.sandbox.clear_requests()

    with env.runner() as runner:
        runs_before = runner.store.runs(limit=100)
        outcome = revert(runner, run_id=first.run_id, dry_run=True)
        assert runner.store.runs(limit=100) == runs_before  # no run opened, none numbered
    assert env.writes() == []
    refused = {r.serial_number for r in outcome.refused}
    assert created[0].serial_number in refused  # a later run wrote it: undo that first
    kinds = sorted({op.kind for op in outcome.run.plan.operations})
    assert kinds == ["delete", "update"]  # the creates deleted, the adoptions restored

    with env.runner() as runner:
        held = revert(runner, run_id=first.run_id)
        assert held.run.status == "held"  # deletes 5 of 16 owned devices: over 10%
        assert env.writes() == []
        approved = runner.approve(held.run.run_id, "operator")
    assert approved.applied.failed == 0
    assert method_counts(env.writes()) == {"DELETE": 5, "PATCH": 10}
    assert created[0].serial_number in env.devices()
    assert {env.devices()[r.serial_number]["location"] for r in old} == {"OLDLOC"}


def test_revert_of_one_change(env: RunEnv) -> None:
    devices = rows(2)
    env.drop(devices)
    env.run()
    env.drop([dataclasses.replace(r, location="DC5") for r in devices])
    second = env.run()
    with env.runner() as runner:
        (one, _) = runner.store.changes(run_id=second.run_id)
    env.sandbox.clear_requests()

    with env.runner() as runner:
        outcome = revert(runner, change_id=one.id)

    assert [op.serial_number for op in outcome.run.plan.writes()] == [one.serial_number]
    assert method_counts(env.writes()) == {"PATCH": 1}
    assert env.devices()[one.serial_number]["location"] == "DC1"


def test_the_command_shows_the_inverse_plan_and_says_what_it_refused(
    env: RunEnv, tmp_path: Path
) -> None:
    devices = rows(2)
    env.drop(devices)
    env.run()
    env.drop([dataclasses.replace(r, location="DC9") for r in devices])
    second = env.run()
    with env.sandbox.client() as api:
        path = f"inventory_device_serial/{devices[0].serial_number}/"
        assert api.patch(path, json={"location": "HAND"}).is_success
    config = env.write_config(tmp_path / "syncd.toml")

    shown = env.syncd("revert", str(second.run_id), "--dry-run", config=config)
    out, _ = shown.communicate(timeout=120)

    assert shown.returncode == 1, out  # something was refused
    assert "refused" in out
    assert devices[0].serial_number in out
    assert "location was changed in the inventory since" in " ".join(out.split())
    assert env.devices()[devices[1].serial_number]["location"] == "DC9"  # dry run: untouched
