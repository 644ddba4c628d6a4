"""Whole runs (``syncd run --once`` in-process) against the sandbox over HTTP.

Each test asserts what a user would check: the inventory's final state, the exact
write calls the API received (the sandbox's request log), and the audit rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.base import Batch, BatchMode, Verdict
from syncd.errors import AuthenticationError, RetriableError, SourceError
from syncd.records import DeviceRecord, Reject
from syncd.sandbox.testing import SandboxProcess
from syncd.service import apply_pending
from syncd.service.runs import RunResult
from syncd.store import RunStateError
from tests.pg import db_url  # noqa: F401 - pytest fixture
from tests.runsupport import REMOTE_OWNER, Row, RunEnv, load_form, method_counts, rows


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")


def test_first_run_creates_adopts_and_leaves_strangers_alone(env: RunEnv) -> None:
    wanted = rows(5)
    existing = dataclasses.replace(wanted[0], name="old-name")
    stranger = rows(1, prefix="OTHER")[0]
    env.sandbox.load(load_form([existing, stranger]))
    env.drop(wanted)

    result = env.run()

    assert result.status == "done"
    assert method_counts(env.writes()) == {"POST": 4, "PATCH": 1}
    devices = env.devices()
    assert set(devices) == {r.serial_number for r in wanted} | {stranger.serial_number}
    assert devices[wanted[0].serial_number]["name"] == wanted[0].name  # adopted and corrected
    assert devices[stranger.serial_number]["name"] == stranger.name  # not ours: untouched
    created = devices[wanted[1].serial_number]
    assert created["type"]["id"] == 3
    assert created["organization"]["id"] == 123
    assert created["ip_address"] == wanted[1].ip_address
    with env.runner() as runner:
        audit = runner.store.change_counts(result.run_id)
        kinds = sorted(c.operation for c in runner.store.changes(run_id=result.run_id))
    assert audit == {"applied": 5}
    assert kinds == ["adopt", "create", "create", "create", "create"]


def test_second_identical_run_makes_no_write_call(env: RunEnv) -> None:
    env.drop(rows(8))
    env.run()
    env.sandbox.clear_requests()

    env.drop(list(reversed(rows(8))))  # same devices, another file, another order
    second = env.run()
    third = env.run()  # and nothing new at all

    assert env.writes() == []
    assert second.plan.writes() == []
    assert third.plan.writes() == []
    assert {r.method for r in env.sandbox.requests()} == {"GET"}
    assert len(env.devices()) == 8


def test_hand_edit_survives_and_is_reported_as_conflict(env: RunEnv) -> None:
    devices = rows(3)
    env.drop(devices)
    env.run()
    edited = devices[0].serial_number
    with env.sandbox.client() as api:
        answer = api.patch(f"inventory_device_serial/{edited}/", json={"name": "renamed-by-hand"})
        assert answer.status_code == 200
    env.sandbox.clear_requests()

    moved = [dataclasses.replace(devices[1], location="DC2"), devices[0], devices[2]]
    env.drop(moved)
    result = env.run()

    assert env.devices()[edited]["name"] == "renamed-by-hand"
    assert env.devices()[devices[1].serial_number]["location"] == "DC2"
    assert method_counts(env.writes()) == {"PATCH": 1}
    conflicts = result.plan.of_kind("conflict")
    assert [c.serial_number for c in conflicts] == [edited]
    assert conflicts[0].changes["name"].before == "renamed-by-hand"
    assert conflicts[0].changes["name"].after == devices[0].name
    with env.runner() as runner:
        audit = runner.store.changes(serial=edited, run_id=result.run_id)
    assert [(c.operation, c.status) for c in audit] == [("conflict", "skipped")]


def test_overwrite_policy_reverts_a_hand_edit(env: RunEnv) -> None:
    env.policy = {"fields": {"name": {"mode": "managed", "on_manual_edit": "overwrite"}}}
    devices = rows(2)
    env.drop(devices)
    env.run()
    serial = devices[0].serial_number
    with env.sandbox.client() as api:
        api.patch(f"inventory_device_serial/{serial}/", json={"name": "renamed-by-hand"})

    env.drop(list(reversed(devices)))
    env.run()

    assert env.devices()[serial]["name"] == devices[0].name


def test_snapshot_listing_half_the_devices_is_held_not_deleted(env: RunEnv) -> None:
    env.policy = {"orphan_grace_runs": 0, "orphan_grace_hours": 0}
    devices = rows(10)
    env.drop(devices)
    env.run()
    env.sandbox.clear_requests()

    env.drop(devices[:5])
    held = env.run()

    assert held.status == "held"
    assert held.plan.held
    assert any("procurement" in reason for reason in held.plan.hold_reasons)
    assert len(held.plan.of_kind("delete")) == 5
    assert env.writes() == []
    assert len(env.devices()) == 10

    with env.runner() as runner:
        assert runner.store.change_counts(held.run_id) == {"held": 5}
        approved = runner.approve(held.run_id, "test")
    assert (approved.released, approved.stale) == (5, 0)
    assert method_counts(env.writes()) == {"DELETE": 5}
    assert set(env.devices()) == {r.serial_number for r in devices[:5]}


def test_source_that_shrinks_is_held_even_before_any_delete_is_due(env: RunEnv) -> None:
    devices = rows(10)
    env.drop(devices)
    env.run()
    env.sandbox.clear_requests()

    env.drop(devices[:5])  # default grace: no delete is due yet, but the drop is suspicious
    held = env.run()

    assert held.status == "held"
    assert held.plan.of_kind("delete") == []
    (reason,) = held.plan.hold_reasons
    assert "procurement" in reason
    assert "10" in reason
    assert "5" in reason
    assert env.writes() == []


def test_orphan_waits_out_its_grace_runs(env: RunEnv) -> None:
    env.policy = {"orphan_grace_runs": 2, "orphan_grace_hours": 0, "max_delete_share": 1.0}
    devices = rows(4)
    env.drop(devices)
    env.run()
    env.sandbox.clear_requests()

    env.drop(devices[1:])
    first = env.run()
    assert first.plan.of_kind("delete") == []
    assert env.writes() == []

    second = env.run()
    assert [op.serial_number for op in second.plan.of_kind("delete")] == [devices[0].serial_number]
    assert method_counts(env.writes()) == {"DELETE": 1}
    assert devices[0].serial_number not in env.devices()


def test_conflict_on_create_is_read_back_then_planned_by_the_rules(env: RunEnv) -> None:
    devices = rows(2)
    env.drop(devices)
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
        # Someone creates the same device, with another location, before we apply.
        clash = dataclasses.replace(devices[0], location="Somewhere else")
        env.sandbox.load(load_form([clash]))
        env.sandbox.clear_requests()
        report = apply_pending(runner.store, runner.client, run_id=run_id)
        rows_ = {c.serial_number: c for c in runner.store.changes(run_id=run_id)}

    assert (report.applied, report.skipped, report.failed) == (1, 1, 0)
    log = [(r.method, r.status) for r in env.sandbox.requests()]
    assert ("POST", 409) in log
    assert "PATCH" not in {method for method, _ in log}  # a 409 alone never patches
    clashed = rows_[devices[0].serial_number]
    assert clashed.status == "skipped"
    assert clashed.response is not None
    assert clashed.response["status_code"] == 409

    env.sandbox.clear_requests()
    adopted = env.run()  # the next run plans it: adoption, location from the source
    assert [(op.kind, set(op.changes)) for op in adopted.plan.writes()] == [("adopt", {"location"})]
    assert env.devices()[devices[0].serial_number]["location"] == devices[0].location


def test_delete_of_a_device_already_gone_is_done(env: RunEnv) -> None:
    env.policy = {"orphan_grace_runs": 0, "orphan_grace_hours": 0, "max_delete_share": 1.0}
    devices = rows(3)
    env.drop(devices)
    env.run()
    env.drop(devices[1:])
    gone = devices[0].serial_number
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
        with env.sandbox.client() as api:
            assert api.delete(f"inventory_device_serial/{gone}/").status_code == 204
        report = apply_pending(runner.store, runner.client, run_id=run_id)
        (change,) = runner.store.changes(run_id=run_id, serial=gone)
    assert report.failed == 0
    assert change.operation == "delete"
    assert change.status == "applied"
    assert change.response is not None
    assert "already gone" in str(change.response.get("detail"))


def test_unmappable_type_is_a_reported_reject_not_a_crash(env: RunEnv) -> None:
    good = rows(2)
    bad = dataclasses.replace(rows(1, start=50)[0], device_type="Quantum Router 9000")
    env.drop([*good, bad])

    result = env.run()

    assert result.status == "done"
    rejects = result.plan.of_kind("reject")
    assert [r.serial_number for r in rejects] == [bad.serial_number]
    assert "Quantum Router 9000" in rejects[0].reason
    assert set(env.devices()) == {r.serial_number for r in good}


def test_bad_rows_are_reported_by_line_and_the_rest_applied(env: RunEnv) -> None:
    text = (
        "serial_number,name,device_type,organization,ip_address\n"
        "SN1,sw-1,Cisco Catalyst 9300,Acme Corp IT,10.0.0.1\n"
        "SN2,sw-2,Cisco Catalyst 9300,Acme Corp IT,10.0.0.999\n"
        "SN3,sw-3,Cisco Catalyst 9300,Acme Corp IT,10.0.0.3\n"
        ",sw-4,Cisco Catalyst 9300,Acme Corp IT,10.0.0.4\n"
        "SN5,sw-5,Cisco Catalyst 9300,Acme Corp IT,10.0.0.5\n"
        "SN6,sw-6,Cisco Catalyst 9300,Acme Corp IT,10.0.0.6\n"
        "SN7,sw-7,Cisco Catalyst 9300,Acme Corp IT,10.0.0.7\n"
        "SN8,sw-8,Cisco Catalyst 9300,Acme Corp IT,10.0.0.8\n"
        "SN9,sw-9,Cisco Catalyst 9300,Acme Corp IT,10.0.0.9\n"
        "SN10,sw-10,Cisco Catalyst 9300,Acme Corp IT,10.0.0.10\n"
        "SN11,sw-11,Cisco Catalyst 9300,Acme Corp IT,10.0.0.11\n"
        "SN12,sw-12,Cisco Catalyst 9300,Acme Corp IT,10.0.0.12\n"
        "SN13,sw-13,Cisco Catalyst 9300,Acme Corp IT,10.0.0.13\n"
        "SN14,sw-14,Cisco Catalyst 9300,Acme Corp IT,10.0.0.14\n"
        "SN15,sw-15,Cisco Catalyst 9300,Acme Corp IT,10.0.0.15\n"
        "SN16,sw-16,Cisco Catalyst 9300,Acme Corp IT,10.0.0.16\n"
        "SN17,sw-17,Cisco Catalyst 9300,Acme Corp IT,10.0.0.17\n"
        "SN18,sw-18,Cisco Catalyst 9300,Acme Corp IT,10.0.0.18\n"
        "SN19,sw-19,Cisco Catalyst 9300,Acme Corp IT,10.0.0.19\n"
        "SN20,sw-20,Cisco Catalyst 9300,Acme Corp IT,10.0.0.20\n"
    )
    path = env.drop(text, name="po-17.csv")

    result = env.run()

    locations = sorted((r.location.rsplit("/", 1)[-1], r.reason) for r in result.rejects)
    assert [loc for loc, _ in locations] == ["po-17.csv:3", "po-17.csv:5"]
    assert "10.0.0.999" in locations[0][1]
    assert len(env.devices()) == 18
    assert (env.inbox / "processed").exists()
    assert not path.exists()


def test_file_over_the_error_ratio_is_refused_whole(env: RunEnv) -> None:
    text = (
        "serial_number,name,device_type,organization,ip_address\n"
        + "".join(
            f"SN{i},sw-{i},Cisco Catalyst 9300,Acme Corp IT,10.0.0.{900 + i}\n" for i in range(5)
        )
        + "SN9,sw-9,Cisco Catalyst 9300,Acme Corp IT,10.0.0.9\n"
    )
    env.drop(text, name="broken.csv")

    result = env.run()

    assert [b.accepted for b in result.ingest.batches] == [False]
    assert env.writes() == []
    assert env.devices() == {}
    failed = env.inbox / "failed"
    assert (failed / "broken.csv").exists()
    assert any(p.name.startswith("broken.csv") and p.name != "broken.csv" for p in failed.iterdir())


def test_failed_write_is_recorded_and_replanned_next_run(env: RunEnv) -> None:
    env.inventory = {"retry": {"attempts": 1, "wait_initial": 0.0, "wait_max": 0.0}}
    devices = rows(3)
    env.drop(devices)
    env.sandbox.set_faults(script=["ok", "ok", "503"])  # the two list reads, then a POST

    first = env.run()

    assert first.status == "failed"
    assert first.applied is not None
    assert (first.applied.applied, first.applied.failed) == (2, 1)
    assert len(env.devices()) == 2
    second = env.run()
    assert second.status == "done"
    assert len(second.plan.of_kind("create")) == 1
    assert len(env.devices()) == 3


def test_refused_token_fails_the_run_and_writes_nothing(env: RunEnv) -> None:
    env.drop(rows(2))
    with env.runner(token=SecretStr("not-the-token")) as runner, pytest.raises(AuthenticationError):
        runner.run(dry_run=False)
    with env.runner() as runner:
        (last,) = runner.store.runs(limit=1)
    assert last.status == "failed"
    assert last.error is not None
    assert "not-the-token" not in last.error
    assert env.writes() == []


class _BrokenBatch:
    """A source that dies half-way through its listing."""

    origin = "broken source"
    mode: BatchMode = "snapshot"

    def items(self) -> Iterator[DeviceRecord | Reject]:
        yield DeviceRecord(source="flaky", serial_number="SN00001", name="x")
        raise SourceError("connection reset by the source after 1 record")

    @property
    def verdict(self) -> Verdict:
        return Verdict(accepted=False, reason="not read")

    def commit(self) -> None:
        raise AssertionError("a broken batch must not be committed")

    def fail(self, reason: str) -> None:
        self.failed = reason


class _FlakyConnector:
    name = "flaky"

    def __init__(self) -> None:
        self.batch = _BrokenBatch()

    def fetch(self) -> Iterator[Batch]:
        yield self.batch


def test_source_failing_mid_pull_fails_the_run_and_touches_nothing(env: RunEnv) -> None:
    env.drop(rows(3))
    env.run()
    env.sandbox.clear_requests()
    flaky = _FlakyConnector()
    with env.runner(connectors=[flaky]) as runner, pytest.raises(SourceError):
        runner.run(dry_run=False)
    with env.runner() as runner:
        (last,) = runner.store.runs(limit=1)
        batches = runner.store.batches(connector="flaky")
    assert last.status == "failed"
    assert "connection reset" in (last.error or "")
    assert [b.accepted for b in batches] == [False]
    assert flaky.batch.failed.startswith("reading failed")
    assert env.writes() == []
    assert len(env.devices()) == 3


def test_dry_run_writes_nothing_and_records_no_change(env: RunEnv) -> None:
    env.drop(rows(4))
    result = env.run(dry_run=True)
    assert len(result.plan.of_kind("create")) == 4
    assert env.writes() == []
    with env.runner() as runner:
        assert runner.store.changes(run_id=result.run_id) == []
    real = env.run()  # the stored snapshot is planned again, for real
    assert len(real.plan.of_kind("create")) == 4
    assert len(env.devices()) == 4


@pytest.mark.usefixtures("sandbox")
def test_whole_run_on_each_store(
    sandbox: SandboxProcess,
    tmp_path: Path,
    db_url: str,  # noqa: F811 - the fixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=db_url)
    env.drop(rows(30))
    first = env.run()
    assert first.status == "done"
    assert method_counts(env.writes()) == {"POST": 30}
    env.sandbox.clear_requests()
    env.drop(
        [dataclasses.replace(r, location="DC9") if i < 3 else r for i, r in enumerate(rows(30))]
    )
    second = env.run()
    assert method_counts(env.writes()) == {"PATCH": 3}
    assert len(second.plan.of_kind("update")) == 3
    assert sum(1 for d in env.devices().values() if d["location"] == "DC9") == 3


def test_token_never_reaches_the_store_or_the_output(
    env: RunEnv, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    env.drop(rows(3))
    env.sandbox.set_faults(script=["ok", "503"])  # a failed write, with its answer recorded
    env.inventory = {"retry": {"attempts": 1, "wait_initial": 0.0, "wait_max": 0.0}}
    env.run()
    wrong = SecretStr("wrong-token-for-this-test-0123456789")
    with env.runner(token=wrong) as runner, pytest.raises(AuthenticationError):
        runner.run(dry_run=False)

    secrets = [env.sandbox.token.get_secret_value(), wrong.get_secret_value()]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("syncd.db*"))
    assert stored, "the run must have written the store"
    printed = capfd.readouterr()
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret not in printed.out + printed.err


def test_delta_files_upsert_and_delete_only_what_they_name(env: RunEnv) -> None:
    env.csv_options = {"mode": "delta"}
    env.policy = {"orphan_grace_runs": 0, "orphan_grace_hours": 0, "max_delete_share": 1.0}
    header = "action,serial_number,name,device_type,organization,location\n"
    env.drop(
        header
        + "".join(
            f"upsert,SN{i},sw-{i},Cisco Catalyst 9300,Acme Corp IT,DC1\n" for i in range(1, 6)
        )
    )
    env.run()
    env.sandbox.clear_requests()

    env.drop(
        header
        + "upsert,SN2,sw-2,Cisco Catalyst 9300,Acme Corp IT,DC7\n"
        + "delete,SN4,,,,\n"
        + "upsert,SN6,sw-6,FortiGate 100F,Globex Retail,DC1\n"
    )
    result = env.run()

    assert result.status == "done"
    assert method_counts(env.writes()) == {"PATCH": 1, "DELETE": 1, "POST": 1}
    devices = env.devices()
    assert set(devices) == {"SN1", "SN2", "SN3", "SN5", "SN6"}  # the rest untouched
    assert devices["SN2"]["location"] == "DC7"
    assert devices["SN6"]["organization"]["id"] == 2


def test_change_abandoned_by_a_dead_process_is_planned_afresh_by_the_next_run(env: RunEnv) -> None:
    devices = rows(2)
    env.drop(devices)
    with env.runner() as runner:  # a run on another machine claims a change, then dies
        run_id = env.record_plan_only(runner)
        (first, *_rest) = runner.store.pending_changes(run_id=run_id)
        assert runner.store.claim_change(first.id, owner=REMOTE_OWNER)
    with env.runner() as runner:  # its claim may still be in flight: left alone, and said
        waiting = runner.run(dry_run=False)
    assert waiting.summary()["claims_held_elsewhere"] == 1

    later = datetime.now(UTC) + timedelta(minutes=11)  # past the lease
    with env.runner(clock=lambda: later) as runner:
        result = runner.run(dry_run=False)
        stuck = runner.store.change(first.id)

    assert result.status == "done"
    assert stuck is not None
    assert stuck.status == "failed"  # abandoned: the serial is planned afresh instead
    assert "abandoned" in (stuck.error or "")
    assert set(env.devices()) == {r.serial_number for r in devices}
    assert method_counts(env.writes()) == {"POST": 2}
    assert "claims_held_elsewhere" not in result.summary()


def test_hand_edit_of_an_adopted_device_is_a_conflict_too(env: RunEnv) -> None:
    devices = rows(2)
    env.sandbox.load(load_form(devices))  # already in the inventory, equal to the source
    env.drop(devices)
    first = env.run()
    assert [op.kind for op in first.plan.operations] == ["adopt", "adopt"]
    serial = devices[0].serial_number
    with env.sandbox.client() as api:
        api.patch(f"inventory_device_serial/{serial}/", json={"name": "renamed-by-hand"})
    env.sandbox.clear_requests()

    env.drop(list(reversed(devices)))
    second = env.run()

    assert env.devices()[serial]["name"] == "renamed-by-hand"
    assert [op.serial_number for op in second.plan.of_kind("conflict")] == [serial]
    assert env.writes() == []


def test_device_created_by_someone_else_is_left_alone_when_adoption_is_off(env: RunEnv) -> None:
    env.policy = {"adopt": False}
    devices = rows(1)
    env.drop(devices)
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
        stranger = dataclasses.replace(devices[0], name="someone-elses")
        env.sandbox.load(load_form([stranger]))
        report = apply_pending(runner.store, runner.client, run_id=run_id)
        (change,) = runner.store.changes(run_id=run_id)
    assert (report.applied, report.skipped, report.failed) == (0, 1, 0)
    assert change.status == "skipped"
    assert "409" in (change.error or "")
    env.sandbox.clear_requests()

    later = env.run()

    assert [(op.kind, op.reason) for op in later.plan.operations] == [
        ("skip", "exists, not managed (adopt disabled)")
    ]
    assert env.writes() == []
    assert env.devices()[devices[0].serial_number]["name"] == "someone-elses"


def test_a_change_the_api_refuses_is_not_resent_every_run(env: RunEnv) -> None:
    env.drop(rows(2))
    env.sandbox.set_faults(script=["ok", "400"])  # the listing, then the first POST

    first = env.run()
    assert first.status == "failed"
    env.sandbox.clear_requests()
    second = env.run()  # nothing changed: the refused create is not sent again

    assert second.status == "done"
    assert env.writes() == []
    assert len(env.devices()) == 1


def test_resending_an_older_snapshot_is_a_new_snapshot_not_a_duplicate(env: RunEnv) -> None:
    env.policy = {"orphan_grace_runs": 0, "orphan_grace_hours": 0, "max_delete_share": 1.0}
    a, b = rows(6), rows(5)
    env.drop(a)
    env.run()
    env.drop(b)
    env.run()
    assert len(env.devices()) == 5
    env.drop(a)  # the same bytes as the first file

    third = env.run()

    assert [op.kind for op in third.plan.writes()] == ["create"]
    assert len(env.devices()) == 6


def test_held_plan_then_fixed_source_plans_afresh(env: RunEnv) -> None:
    devices = rows(10)
    env.drop(devices)
    env.run()
    newcomer = rows(1, start=500)[0]
    env.drop([*devices[:4], newcomer])  # suspicious shrink: held, with a create in it
    held = env.run()
    assert held.status == "held"

    env.drop([*devices, newcomer])  # the operator fixes the source instead of approving
    fixed = env.run()

    assert fixed.status == "done"
    assert [op.serial_number for op in fixed.plan.of_kind("create")] == [newcomer.serial_number]
    assert newcomer.serial_number in env.devices()
    with env.runner() as runner:
        assert runner.store.change_counts(held.run_id).get("held", 0) == 0


def _held_move_of_a_device_moved_by_hand(env: RunEnv, devices: list[Row]) -> RunResult:
    """A plan held by the delete gate (the first device moved to DC2, the last one
    deleted), then the first device moved to DC9 by hand; the request log cleared."""
    env.policy = {"max_delete_share": 0.0, "orphan_grace_runs": 0, "orphan_grace_hours": 0}
    env.drop(devices)
    env.run()
    env.drop([dataclasses.replace(devices[0], location="DC2"), *devices[1:-1]])
    held = env.run()
    assert held.status == "held"
    serial = devices[0].serial_number
    with env.sandbox.client() as api:  # meanwhile someone moves the device by hand
        api.patch(f"inventory_device_serial/{serial}/", json={"location": "DC9"})
    env.sandbox.clear_requests()
    return held


def test_approve_skips_a_change_the_inventory_has_overtaken(env: RunEnv) -> None:
    devices = rows(4)
    held = _held_move_of_a_device_moved_by_hand(env, devices)
    serial = devices[0].serial_number

    with env.runner() as runner:
        approved = runner.approve(held.run_id, "alice")
        (update,) = runner.store.changes(run_id=held.run_id, serial=serial)

    assert approved.stale == 1
    assert update.status == "skipped"
    assert "location" in (update.error or "")
    assert env.devices()[serial]["location"] == "DC9"
    assert method_counts(env.writes()) == {"DELETE": 1}


def test_approve_reads_the_plans_devices_alone_when_that_is_cheaper_than_a_listing(
    env: RunEnv,
) -> None:
    devices = rows(250)  # a listing is 3 pages of 100
    held = _held_move_of_a_device_moved_by_hand(env, devices)
    serial, gone = devices[0].serial_number, devices[-1].serial_number

    with env.runner() as runner:
        approved = runner.approve(held.run_id, "alice")

    reads = sorted(r.path for r in env.sandbox.requests() if r.method == "GET")
    assert reads == [f"/api/v1/inventory_device_serial/{s}/" for s in sorted((serial, gone))]
    assert approved.stale == 1  # the hand edit is still seen, from the device's own read
    assert env.devices()[serial]["location"] == "DC9"
    assert method_counts(env.writes()) == {"DELETE": 1}
    assert gone not in env.devices()


def test_change_abandoned_by_a_dead_process_never_reverts_a_newer_value(env: RunEnv) -> None:
    devices = rows(2)
    env.drop(devices)
    env.run()
    serial = devices[0].serial_number
    env.drop([dataclasses.replace(devices[0], location="DC2"), devices[1]])
    with env.runner() as runner:  # plans the move to DC2, claims the PATCH and "dies"
        run_id = env.record_plan_only(runner)
        (stale,) = runner.store.pending_changes(run_id=run_id)
        assert runner.store.claim_change(stale.id, owner=REMOTE_OWNER)
    env.drop([dataclasses.replace(devices[0], location="DC3"), devices[1]])
    env.sandbox.clear_requests()
    newer = env.run()  # the claim is fresh: its worker may still be alive
    # The changes of one serial go out in order, one at a time: the move to DC3 waits
    # behind the claimed PATCH (sending both could land DC2 last), and the run says so.
    assert newer.status == "applying"
    assert env.writes() == []
    assert env.devices()[serial]["location"] == "DC1"

    later = datetime.now(UTC) + timedelta(minutes=11)
    with env.runner(clock=lambda: later) as runner:
        result = runner.run(dry_run=False)
        dead = runner.store.change(stale.id)
    env.run()

    assert result.status == "done"
    # the stale PATCH to DC2 is never sent: the serial is planned afresh, once
    assert [(r.method, r.status) for r in env.writes()] == [("PATCH", 200)]
    assert env.devices()[serial]["location"] == "DC3"
    assert dead is not None
    assert (dead.status, dead.error) == ("failed", "abandoned: the process applying it stopped")


def test_change_the_api_refused_is_not_resent_until_its_source_changes(env: RunEnv) -> None:
    devices = rows(3)
    env.drop(devices)
    env.sandbox.set_faults(script=["ok", "ok", "400"])  # one of the POSTs is refused

    first = env.run()

    assert first.applied is not None
    assert (first.applied.applied, first.applied.failed) == (2, 1)
    with env.runner() as runner:
        (refused,) = runner.store.changes(run_id=first.run_id, status="failed")
    env.sandbox.clear_requests()
    second = env.run()
    assert second.status == "done"
    assert env.writes() == []  # a no-op run makes no write call
    assert refused.serial_number not in env.devices()

    bad = next(r for r in devices if r.serial_number == refused.serial_number)
    env.drop([*(r for r in devices if r is not bad), dataclasses.replace(bad, name="fixed")])
    env.run()
    assert method_counts(env.writes()) == {"POST": 1}
    assert env.devices()[refused.serial_number]["name"] == "fixed"


def test_a_held_plan_overtaken_by_a_newer_run_cannot_be_approved(env: RunEnv) -> None:
    devices = rows(10)
    env.drop(devices)
    env.run()
    moved = dataclasses.replace(devices[0], location="DC2")
    env.drop([moved, *devices[1:4]])  # a suspicious shrink, with an update in it: held
    held = env.run()
    assert held.status == "held"
    env.drop(devices)  # the operator fixes the source: the update is no longer wanted
    fixed = env.run()
    assert fixed.status == "done"

    with env.runner() as runner, pytest.raises(RunStateError, match="not held"):
        runner.approve(held.run_id, "bob")
    with env.runner() as runner:
        (overtaken,) = runner.store.changes(run_id=held.run_id)
        run = runner.store.run(held.run_id)
    assert overtaken.status == "skipped"
    assert f"overtaken by run {fixed.run_id}" in (overtaken.error or "")
    assert run is not None
    assert run.status == "done"
    assert env.devices()[devices[0].serial_number]["location"] == "DC1"


def test_approve_still_sees_a_hand_edit_of_a_field_the_plan_did_not_touch(env: RunEnv) -> None:
    env.policy = {
        "max_delete_share": 0.0,
        "orphan_grace_runs": 0,
        "orphan_grace_hours": 0,
        "fields": {"name": {"mode": "managed", "on_manual_edit": "overwrite"}},
    }
    devices = rows(4)
    env.drop(devices)
    env.run()
    moved = [dataclasses.replace(devices[0], location="DC2"), *devices[1:3]]
    env.drop(moved)  # an update and a delete: held by the delete gate
    held = env.run()
    assert held.status == "held"
    serial = devices[0].serial_number
    with env.sandbox.client() as api:
        api.patch(f"inventory_device_serial/{serial}/", json={"name": "renamed-by-hand"})
    with env.runner() as runner:
        runner.approve(held.run_id, "alice")

    env.run()  # nothing new from the sources: the name is overwritten, as the policy says

    assert env.devices()[serial]["name"] == devices[0].name
    assert env.devices()[serial]["location"] == "DC2"


def test_an_approval_that_cannot_read_the_inventory_leaves_the_run_held(env: RunEnv) -> None:
    env.policy = {"max_delete_share": 0.0, "orphan_grace_runs": 0, "orphan_grace_hours": 0}
    env.inventory = {"retry": {"attempts": 1, "wait_initial": 0.0, "wait_max": 0.0}}
    devices = rows(4)
    env.drop(devices)
    env.run()
    env.drop(devices[:3])
    held = env.run()
    assert held.status == "held"
    env.sandbox.set_faults(script=["503"])
    with env.runner() as runner, pytest.raises(RetriableError):
        runner.approve(held.run_id, "alice")
    with env.runner() as runner:
        assert runner.store.change_counts(held.run_id) == {"held": 1}
        approved = runner.approve(held.run_id, "alice")  # the inventory answers again
    assert approved.applied.applied == 1
    assert set(env.devices()) == {r.serial_number for r in devices[:3]}


def test_a_server_error_on_a_write_is_tried_again_by_the_next_run(env: RunEnv) -> None:
    env.inventory = {"retry": {"attempts": 1, "wait_initial": 0.0, "wait_max": 0.0}}
    env.drop(rows(3))
    env.sandbox.set_faults(script=["ok", "ok", "500"])  # listing, first POST, then a 500
    first = env.run()
    assert first.status == "failed"
    assert len(env.devices()) == 2
    second = env.run()
    assert [op.kind for op in second.plan.writes()] == ["create"]
    assert len(env.devices()) == 3


def test_an_update_of_a_device_deleted_by_hand_recreates_it_next_run(env: RunEnv) -> None:
    devices = rows(2)
    env.drop(devices)
    env.run()
    serial = devices[0].serial_number
    env.drop([dataclasses.replace(devices[0], location="DC2"), devices[1]])
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
        with env.sandbox.client() as api:  # deleted by hand between plan and apply
            assert api.delete(f"inventory_device_serial/{serial}/").status_code == 204
        report = apply_pending(runner.store, runner.client, run_id=run_id)
    assert report.failed == 1

    again = env.run()

    assert [(op.kind, op.serial_number) for op in again.plan.writes()] == [("create", serial)]
    assert env.devices()[serial]["location"] == "DC2"


def test_a_create_that_meets_a_device_keeps_its_create_only_values(env: RunEnv) -> None:
    env.policy = {"fields": {"location": {"mode": "create_only"}}}
    devices = rows(1)
    env.drop(devices)
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
        env.sandbox.load(load_form([dataclasses.replace(devices[0], location="HAND", name="x")]))
        apply_pending(runner.store, runner.client, run_id=run_id)
    env.run()  # the device found by the 409 is adopted by the rules of an adoption
    device = env.devices()[devices[0].serial_number]
    assert device["location"] == "HAND"  # create_only: someone else's value stays
    assert device["name"] == devices[0].name  # managed: corrected


def test_a_large_plan_is_streamed_into_the_store_and_applied_whole(
    env: RunEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run keeps only the first PLAN_KEPT operations in memory; every one is recorded.
    monkeypatch.setattr("syncd.service.runs.PLAN_KEPT", 2)
    env.drop(rows(5))

    result = env.run()

    assert result.status == "done"
    assert len(result.plan.operations) == 2
    assert result.operations_not_kept == 3
    assert result.plan.counts["create"] == 5
    assert method_counts(env.writes()) == {"POST": 5}
    with env.runner() as runner:
        assert runner.store.change_counts(result.run_id) == {"applied": 5}
