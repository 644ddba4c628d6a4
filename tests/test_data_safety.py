"""Regression tests for the data-safety defects found from outside (issue 7).

Each test replays what a hostile but fair user did against the sandbox over HTTP and
checks what that user would look at: the inventory, the write calls it received (the
sandbox's request log), and the audit rows.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from syncd.inventory import InventoryClient
from syncd.process import ProcessIdentity
from syncd.sandbox.testing import SandboxProcess
from syncd.service import Runner
from syncd.store import Store
from tests.procs import wait_for
from tests.runsupport import RunEnv, dead_owner, method_counts, rows


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
            body: dict[str, object] = {"count": 0, "next": None, "previous": None, "results": []}
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


# -- 3 and 4. a process that dies while applying: the next run finishes or re-plans at once ---


def _script_left(sandbox: SandboxProcess) -> int:
    return len(sandbox.faults()["script"])


def _kill_during_the_kth_write(env: RunEnv, tmp_path: Path, k: int, sig: int) -> str:
    """``syncd run --once`` as a process, sent ``sig`` while its ``k``-th write is in flight
    (the sandbox holds that request for 1.5 s, then applies it). Returns its output.

    One change at a time, so that exactly ``k - 1`` writes were answered before."""
    env.outbox = {"concurrency": 1}
    script = ["ok"] + ["ok"] * (k - 1) + ["delay:1500"]  # the listing, k-1 writes, then held
    env.sandbox.set_faults(script=script)
    process = env.syncd("run", "--once", config=env.write_config(tmp_path / "syncd.toml"))
    wait_for(lambda: _script_left(env.sandbox) == 0, "the held write to arrive")
    process.send_signal(sig)
    output, _ = process.communicate(timeout=60)
    env.sandbox.set_faults(script=[])
    return f"exit {process.returncode}\n{output}"


@pytest.mark.parametrize("adopt", [True, False])
def test_create_landed_by_a_killed_process_is_found_and_owned_by_the_next_run(
    env: RunEnv, tmp_path: Path, adopt: bool
) -> None:
    env.policy = {"adopt": adopt, "orphan_grace_runs": 0, "orphan_grace_hours": 0}
    devices = rows(20)
    env.drop(devices)

    output = _kill_during_the_kth_write(env, tmp_path, 6, signal.SIGKILL)
    assert output.startswith("exit -9"), output
    wait_for(lambda: len(env.devices()) == 6, "the held POST to land")  # it lands, unanswered

    with env.runner() as runner:
        (killed,) = runner.store.runs(limit=1)
        (held,) = runner.store.claimed_changes()  # claimed, sent, never recorded
    assert killed.status == "applying"
    result = env.run()

    assert result.status == "done"
    assert result.recovery.creates_found == 1  # read back: found exactly as sent
    assert set(env.devices()) == {r.serial_number for r in devices}
    assert method_counts(env.writes())["POST"] == 20  # none sent twice
    with env.runner() as runner:
        assert runner.store.claimed_changes() == []
        assert runner.store.count_pending() == 0
        recovered = runner.store.change(held.id)
        closed = runner.store.run(killed.id)
        (candidate,) = runner.store.load_candidates([held.serial_number])
    assert recovered is not None
    assert recovered.status == "applied"
    assert closed is not None
    assert closed.status == "done"  # its process is gone and its changes are final
    assert candidate.mirror is not None
    assert candidate.mirror.ownership == "created"  # syncd's own, even with adopt = false

    env.drop([r for r in devices if r.serial_number != held.serial_number])
    env.run()
    assert held.serial_number not in env.devices()  # owned, so deleted when dropped
    assert env.run().plan.writes() == []


def test_change_claimed_by_a_dead_process_is_planned_again_at_once(env: RunEnv) -> None:
    devices = rows(5)
    env.drop(devices)
    with env.runner() as runner:  # claims a create, then dies before sending it
        run_id = env.record_plan_only(runner)
        first = runner.store.pending_changes(run_id=run_id)[0]
        assert runner.store.claim_change(first.id, owner=dead_owner())

    result = env.run()  # no lease to wait out: the claimant is known to be gone

    assert result.status == "done"
    assert result.recovery.abandoned == 1
    assert set(env.devices()) == {r.serial_number for r in devices}
    assert method_counts(env.writes()) == {"POST": 5}
    with env.runner() as runner:
        abandoned = runner.store.change(first.id)
        assert runner.store.claimed_changes() == []
    assert abandoned is not None
    assert abandoned.status == "failed"
    assert "before the device was created" in (abandoned.error or "")


def test_claim_of_a_live_process_is_left_to_it(env: RunEnv) -> None:
    env.drop(rows(2))
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
        first = runner.store.pending_changes(run_id=run_id)[0]
        assert runner.store.claim_change(first.id, owner=str(ProcessIdentity.of_pid(1)))

    result = env.run()

    assert result.recovery.in_progress == 1
    assert len(env.devices()) == 1
    with env.runner() as runner:
        (still,) = runner.store.claimed_changes()
    assert still.id == first.id


def test_run_left_planning_by_a_dead_process_is_closed_by_the_next(env: RunEnv) -> None:
    env.drop(rows(2))
    with env.runner() as runner:
        dead = runner.store.begin_run("cli", runner.policy.fingerprint(), owner=dead_owner())

    result = env.run()

    assert result.recovery.closed_runs == [dead]
    with env.runner() as runner:
        closed = runner.store.run(dead)
    assert closed is not None
    assert closed.status == "interrupted"
    assert "stopped before its plan was recorded" in (closed.error or "")


# -- 5. SIGTERM and Ctrl-C: finish the change in flight, start nothing new, close the run ------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_stops_gracefully_between_two_changes(
    env: RunEnv, tmp_path: Path, sig: signal.Signals
) -> None:
    devices = rows(20)
    env.drop(devices)

    output = _kill_during_the_kth_write(env, tmp_path, 4, sig)

    assert output.startswith(f"exit {128 + sig}"), output
    assert "Traceback" not in output
    assert len(env.devices()) == 4  # the write in flight was finished, nothing new started
    with env.runner() as runner:
        (stopped,) = runner.store.runs(limit=1)
        assert runner.store.claimed_changes() == []  # nothing left claimed
        counts = runner.store.change_counts(stopped.id)
    assert stopped.status == "interrupted"
    assert f"stopped by {sig.name}" in (stopped.error or "")
    assert counts == {"applied": 4, "pending": 16}

    result = env.run()
    assert result.status == "done"
    assert set(env.devices()) == {r.serial_number for r in devices}
    assert method_counts(env.writes())["POST"] == 20


def test_second_signal_stops_at_once_and_the_next_run_recovers(env: RunEnv, tmp_path: Path) -> None:
    env.outbox = {"concurrency": 1}
    devices = rows(10)
    env.drop(devices)
    env.sandbox.set_faults(script=["ok", "ok", "delay:3000"])
    process = env.syncd("run", "--once", config=env.write_config(tmp_path / "syncd.toml"))
    wait_for(lambda: _script_left(env.sandbox) == 0, "the held write to arrive")
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)  # the first Ctrl-C is handled; the POST is still held by the sandbox
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    env.sandbox.set_faults(script=[])

    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert "stopped at once" in output
    with env.runner() as runner:
        (stopped,) = runner.store.runs(limit=1)
        (given_up,) = runner.store.claimed_changes()
    assert stopped.status == "interrupted"
    assert given_up.operation == "create"
    wait_for(lambda: len(env.devices()) == 2, "the held POST to land")

    result = env.run()

    assert result.status == "done"
    assert result.recovery.creates_found == 1
    assert set(env.devices()) == {r.serial_number for r in devices}
    assert method_counts(env.writes())["POST"] == 10
