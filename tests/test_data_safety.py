"""Regression tests for the data-safety defects found from outside (issue 7).

Each test replays what a hostile but fair user did against the sandbox over HTTP and
checks what that user would look at: the inventory, the write calls it received (the
sandbox's request log), and the audit rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from syncd.inventory import InventoryClient
from syncd.sandbox.testing import SandboxProcess
from syncd.service import Runner
from syncd.store import Store
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


# -- 2. a listing that omits devices: held, and a 409 never reverts a hand edit ----------------


class _EmptyListings(httpx.BaseTransport):
    """A proxy that answers every list request with an empty page (the rest goes through)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/inventory_device_serial/"):
            body = {"count": 0, "next": None, "previous": None, "results": []}
            return httpx.Response(200, json=body, request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@contextmanager
def _runner_behind_empty_listings(env: RunEnv) -> Iterator[Runner]:
    settings = env.settings()
    with (
        Store.open(env.store_url) as store,
        InventoryClient.from_settings(
            settings.inventory, token=env.sandbox.token, transport=_EmptyListings()
        ) as client,
    ):
        yield Runner(settings, store, client)


def test_listing_that_omits_owned_devices_is_held_and_409s_never_revert_hand_edits(
    env: RunEnv,
) -> None:
    devices = rows(30)
    env.drop(devices)
    env.run()
    edited = devices[4].serial_number
    with env.sandbox.client() as api:
        assert api.patch(f"inventory_device_serial/{edited}/", json={"name": "by-hand"}).is_success
    env.drop(devices[::-1])
    reported = env.run()
    assert [op.serial_number for op in reported.plan.of_kind("conflict")] == [edited]
    env.sandbox.clear_requests()

    for _ in range(2):  # a second truncated listing is held just the same
        with _runner_behind_empty_listings(env) as runner:
            held = runner.run(dry_run=False)
        assert held.status == "held"
        assert any("inventory listing holds 0 of the 30" in r for r in held.plan.hold_reasons)
        assert len(held.plan.of_kind("create")) == 30
        assert env.writes() == []

    with _runner_behind_empty_listings(env) as runner:  # an operator approves it anyway
        approved = runner.approve(held.run_id, "operator")
    assert approved.applied.failed == 0
    assert method_counts(env.writes()) == {"POST": 30}  # each met a 409: nothing patched
    assert env.devices()[edited]["name"] == "by-hand"

    env.sandbox.clear_requests()
    healed = env.run()  # the listing is whole again: every device is compared by the rules
    assert env.writes() == []
    assert [op.serial_number for op in healed.plan.of_kind("conflict")] == [edited]
    assert env.devices()[edited]["name"] == "by-hand"
    assert env.run().plan.writes() == []


def test_with_the_listing_gate_off_a_409_still_keeps_hand_edits_and_create_only_values(
    env: RunEnv,
) -> None:
    env.policy = {"min_source_ratio": 0, "fields": {"location": {"mode": "create_only"}}}
    devices = rows(8)
    env.drop(devices)
    env.run()
    edited = devices[2].serial_number
    with env.sandbox.client() as api:
        changed = {"name": "by-hand", "location": "moved-by-hand"}
        assert api.patch(f"inventory_device_serial/{edited}/", json=changed).is_success
    env.drop(devices[::-1])
    env.sandbox.clear_requests()

    with _runner_behind_empty_listings(env) as runner:
        result = runner.run(dry_run=False)

    assert result.status == "done"
    assert method_counts(env.writes()) == {"POST": 8}
    assert {r.status for r in env.writes()} == {409}
    with env.runner() as runner:
        statuses = {(c.operation, c.status) for c in runner.store.changes(run_id=result.run_id)}
    assert statuses == {("create", "skipped")}
    after = env.run()
    assert env.devices()[edited]["name"] == "by-hand"
    assert env.devices()[edited]["location"] == "moved-by-hand"
    assert [op.serial_number for op in after.plan.of_kind("conflict")] == [edited]
    assert after.plan.writes() == []
