"""Counterexamples of the state machine (``tests/properties/machine.py``), as plain
named tests with explicit steps. Those of the known defects of issue 7 are strict
xfails: un-mark each one when its fix lands (and drop its number from
``tests/properties/known.py``)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.inventory import InventoryClient
from syncd.sandbox.testing import SandboxProcess
from syncd.service import Runner
from tests.properties.world import (
    BAD_IP,
    Launcher,
    Row,
    SubprocessLauncher,
    World,
    csv_text,
)

GRACE_OFF = {"orphan_grace_runs": 0, "orphan_grace_hours": 0, "max_delete_share": 1.0}


def row(serial: str, **values: str) -> Row:
    fields = {
        "name": f"{serial.lower()}-a",
        "device_type": "Cisco Catalyst 9300",
        "organization": "Acme Corp IT",
        "ip": "10.0.0.1",
        "location": "DC1",
        **values,
    }
    return Row(serial=serial, **fields)


@pytest.fixture
def world(sandbox: SandboxProcess, tmp_path: Path) -> Iterator[World]:
    built = World(sandbox=sandbox, root=tmp_path, policy=dict(GRACE_OFF))
    yield built
    built.close()


def with_policy(world: World, **policy: object) -> World:
    world.policy.update(policy)
    world.config_path.write_text(world._toml(), encoding="utf-8")
    return world


def deletes(world: World) -> list[str | None]:
    return [r.serial for r in world.writes() if r.method == "DELETE"]


def test_a_row_rejected_for_one_bad_cell_keeps_its_device(world: World) -> None:
    rows = [row(f"A{i}") for i in range(1, 6)]
    world.drop(csv_text(rows))
    world.run()
    world.sandbox.clear_requests()

    rows[1] = row("A2", ip=BAD_IP)  # mgmt_ip = 10.0.0.300
    world.drop(csv_text(rows))
    result = world.run()

    assert [r.location.rsplit(":", 1)[1] for r in result.rejects] == ["3"]
    assert deletes(world) == []
    assert set(world.devices()) == {r.serial for r in rows}


def test_a_listing_that_omits_a_device_does_not_revert_its_hand_edit(world: World) -> None:
    world.drop(csv_text([row("A1")]))
    world.run()
    assert world.by_hand("PATCH", "A1", {"name": "renamed-by-hand"}) == 200
    world.run()  # the edit is seen: a conflict, reported
    world.sandbox.set_faults(hide_from_list=["A1"])  # the listing now omits A1

    world.run()

    assert world.devices()["A1"]["name"] == "renamed-by-hand"


def die_at_first_write(
    world: World, launcher: Launcher, how: signal.Signals, *, after_apply: bool
) -> None:
    """``syncd run --once`` as a process of its own, sent ``how`` while its first write
    (the second request, after the one listing page) waits for an answer."""
    death = world.run_process(
        launcher,
        stall_at=2,
        stall="stall_after_apply" if after_apply else "stall",
        sig=how,
    )
    assert death.signal == how
    assert death.at is not None
    assert death.at.method == "POST"


@pytest.mark.slow
def test_a_change_left_claimed_by_a_killed_process_is_planned_again_by_the_next_run(
    world: World, launcher: Launcher
) -> None:
    world.drop(csv_text([row("A1")]))
    die_at_first_write(world, launcher, signal.SIGKILL, after_apply=False)  # the POST never lands

    result = world.run()

    assert "A1" in world.devices()
    assert result.status == "done"
    assert [c.status for c in world.read_store().unfinished] == []


@pytest.mark.slow
def test_a_create_that_landed_as_the_process_died_stays_syncds_with_adopt_off(
    world: World, launcher: Launcher
) -> None:
    with_policy(world, adopt=False, min_source_ratio=0.0)
    world.drop(csv_text([row("A1"), row("A2")]))
    die_at_first_write(world, launcher, signal.SIGKILL, after_apply=True)  # A1's POST landed
    later = datetime.now(UTC) + timedelta(minutes=11)  # past the stale-claim window
    settings = world.settings()
    with InventoryClient.from_settings(settings.inventory, token=world.sandbox.token) as client:
        Runner(settings, world.store, client, clock=lambda: later).run(dry_run=False)
    world.drop(csv_text([row("A2")]))  # the source no longer lists A1

    world.run()

    assert "A1" not in world.devices()  # syncd created it, so syncd deletes it


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_leaves_no_change_claimed_and_is_closed(
    world: World, launcher: Launcher, how: signal.Signals
) -> None:
    world.drop(csv_text([row("A1")]))
    die_at_first_write(world, launcher, how, after_apply=False)

    view = world.read_store()
    assert [c.status for c in view.unfinished if c.status == "applying"] == []
    assert view.newest is not None
    assert view.newest.status not in ("planning", "applying")


@pytest.mark.slow
def test_a_run_stopped_while_listing_is_closed(world: World) -> None:
    """The machine's first counterexample, shrunk: SIGTERM while the first listing page
    is read leaves the run ``planning`` forever. Here through ``python -m syncd``
    itself, not the pre-imported fork the machine uses."""
    world.drop(csv_text([row("A1")]))
    world.run_process(SubprocessLauncher(), stall_at=1, stall="stall", sig=signal.SIGTERM)

    newest = world.read_store().newest
    assert newest is not None
    assert newest.status not in ("planning", "applying")


def test_a_device_recreated_by_hand_after_syncd_saw_it_gone_is_not_deleted(
    world: World,
) -> None:
    """Found by the machine: syncd created A1; a person deleted it, and a run saw it
    gone; the person made A1 again. That device is the person's: syncd must not delete
    it as its own orphan."""
    with_policy(world, min_source_ratio=0.0)
    world.drop(csv_text([row("A1"), row("A2")]))
    world.run()
    assert world.by_hand("DELETE", "A1") == 204
    world.drop(csv_text([row("A2")]))
    world.run()  # A1: gone from the inventory and from the source
    body = {"serial_number": "A1", "name": "someone-elses", "type": 1, "organization": 123}
    assert world.by_hand("POST", None, body) == 201
    world.sandbox.clear_requests()

    world.run()

    assert deletes(world) == []
    assert world.devices()["A1"]["name"] == "someone-elses"
