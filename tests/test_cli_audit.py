"""The audit as an operator reads it: ``syncd changes|runs|rejects|show|conflicts`` with
their filters and ``--output table|json|csv``, answered from the store a real run wrote
against the sandbox.

The commands run in this process through the console script's entry point
(``syncd.cli.main``), which is what ``syncd`` runs, and much faster than a process each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from syncd.cli import common, main
from syncd.errors import AuthenticationError
from syncd.sandbox.testing import SandboxProcess
from tests.runsupport import HEADER, RunEnv, load_form, rows

#: The row the inventory API accepts and the CSV must not let a spreadsheet evaluate.
FORMULA = "=SUM(1)"


@dataclass(frozen=True)
class Done:
    """What one command did."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.stdout + self.stderr
        return json.loads(self.stdout)


Cli = Callable[..., Done]


@dataclass
class World:
    """Run 1 created four devices (one named like a formula) and rejected one row; then
    SN00001 and SN00002 were renamed by hand and run 2 reported both as conflicts."""

    env: RunEnv
    config: Path
    cli: Cli


def _csv(devices: list[Any], extra: str = "") -> str:
    lines = [",".join(HEADER), *(",".join(d.cells()) for d in devices)]
    return "\n".join(lines) + "\n" + extra


BAD_ROW = "BAD1,bad,Cisco Catalyst 9300,Acme Corp IT,999.1.1.1,DC1\n"


@pytest.fixture
def world(sandbox: SandboxProcess, tmp_path: Path, restored_logging: None) -> World:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")
    env.csv_options = {"max_error_ratio": 0.5}
    config = env.write_config(tmp_path / "syncd.toml")
    token = sandbox.token.get_secret_value()

    def cli(*args: str, columns: int = 200) -> Done:
        overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SYNCD_")}
        overrides |= {"COLUMNS": str(columns), "SYNCD_INVENTORY__TOKEN": token}
        with CliRunner().isolation(env=overrides) as (out, err, _):
            common.console._console = common.err_console._console = None  # made for this width
            try:
                main([*args, "--config", str(config)])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()  # as the process does when it exits
            return Done(code, out.getvalue().decode(), err.getvalue().decode())

    return World(env, config, cli)


@pytest.fixture
def audited(world: World) -> World:
    devices = rows(4)
    devices[3].name = FORMULA
    world.env.drop(_csv(devices, BAD_ROW))
    assert world.env.run().status == "done"
    with world.env.sandbox.client() as api:
        for serial, name in (("SN00001", "by-hand"), ("SN00002", "by-hand-2")):
            assert api.patch(f"inventory_device_serial/{serial}/", json={"name": name}).is_success
    second = world.env.run()
    assert sorted(op.serial_number for op in second.plan.of_kind("conflict")) == [
        "SN00001",
        "SN00002",
    ]
    return world


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_changes_filtered_and_paged_with_before_and_after(audited: World) -> None:
    cli = audited.cli
    one = cli("changes", "--serial", "SN00001", "-o", "json").json()
    assert [(c["run"], c["operation"], c["status"]) for c in one] == [
        (2, "conflict", "skipped"),
        (1, "create", "applied"),
    ]
    conflict, create = one
    assert conflict["changes"]["name"]["before"] == "by-hand"
    assert conflict["changes"]["name"]["after"] == "sw-00001"
    assert conflict["trigger"] == "cli"
    assert conflict["sources"] == ["procurement"]
    assert create["response"]["status_code"] == 201

    only = cli("changes", "--operation", "conflict", "-o", "json").json()
    assert sorted(c["serial_number"] for c in only) == ["SN00001", "SN00002"]
    assert cli("changes", "--conflicts", "--run", "1", "-o", "json").json() == []
    assert [c["id"] for c in cli("changes", "--limit", "2", "--json").json()] == [6, 5]
    older = cli("changes", "--limit", "2", "--before", "5", "-o", "json").json()
    assert [c["id"] for c in older] == [4, 3]

    table = cli("changes", "--limit", "2", columns=80)
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "more: syncd changes --before 5" in table.stdout


def test_changes_csv_is_safe_for_spreadsheets(audited: World) -> None:
    done = audited.cli("changes", "--serial", "SN00004", "--output", "csv")
    assert done.returncode == 0, done.stderr
    by_field = {row["field"]: row for row in _csv_rows(done.stdout)}
    assert by_field["name"]["after"] == "'" + FORMULA  # shown as text, never evaluated
    assert by_field["type"]["after"] == "3"
    assert by_field["name"]["api_status"] == "201"
    assert audited.env.devices()["SN00004"]["name"] == FORMULA  # the data itself is as given


def test_bad_filters_are_refused_with_the_option_named(audited: World) -> None:
    unknown = audited.cli("changes", "--operation", "frobnicate")
    assert unknown.returncode == 2
    assert "operation" in unknown.stderr
    assert "frobnicate" in unknown.stderr
    when = audited.cli("changes", "--since", "yesterday")
    assert when.returncode == 2
    assert "--since" in when.stderr


def test_runs_show_and_rejects_point_at_the_file_where_it_lies(audited: World) -> None:
    cli, inbox = audited.cli, audited.env.inbox
    runs = cli("runs", "-o", "json").json()
    assert [(r["id"], r["trigger"], r["status"]) for r in runs] == [
        (2, "cli", "done"),
        (1, "cli", "done"),
    ]
    as_csv = _csv_rows(cli("runs", "-o", "csv").stdout)
    assert [row["id"] for row in as_csv] == ["2", "1"]

    rejects = cli("rejects", "-o", "json").json()
    assert len(rejects) == 1
    assert rejects[0]["serial_number"] == "BAD1"
    assert rejects[0]["location_now"] == f"{inbox / 'processed' / 'drop-001.csv'}:6"
    assert (inbox / "processed" / "drop-001.csv").read_text().splitlines()[5].startswith("BAD1")
    assert cli("rejects", "--run", "2", "-o", "json").json() == []

    shown = cli("show", "1", "-o", "json").json()
    assert shown["changes_by_operation"] == {"create": 4}
    assert [b["stored_at"] for b in shown["batches"]] == [str(inbox / "processed" / "drop-001.csv")]
    assert len(shown["changes"]) == 4
    table = cli("show", "1")
    assert table.returncode == 0, table.stderr
    assert f"{inbox / 'processed' / 'drop-001.csv'}:6" in table.stdout
    assert "3 (Cisco Catalyst 9300)" in table.stdout  # names beside ids

    missing = cli("show", "99")
    assert missing.returncode == 1
    assert "no run 99" in missing.stderr


def test_open_conflicts_stay_listed_until_resolved(audited: World) -> None:
    cli, env = audited.cli, audited.env
    plan = cli("plan")
    assert plan.returncode == 0, plan.stderr
    assert "2 open conflict(s)" in plan.stdout
    listed = cli("conflicts", "-o", "json").json()
    assert [
        (c["serial_number"], c["field"], c["inventory_value"], c["source_value"]) for c in listed
    ] == [
        ("SN00001", "name", "by-hand", "sw-00001"),
        ("SN00002", "name", "by-hand-2", "sw-00002"),
    ]

    kept = cli("conflicts", "resolve", "SN00001", "name", "--keep-inventory", "--by", "alice")
    assert kept.returncode == 0, kept.stderr
    assert [c["serial_number"] for c in cli("conflicts", "-o", "json").json()] == ["SN00002"]
    # SN00001 planned again (its location moved): the kept name is neither written nor reported
    devices = rows(4)
    devices[0].location = "DC7"
    devices[3].name = FORMULA
    env.drop(_csv(devices))
    env.sandbox.clear_requests()
    again = env.run()
    assert "SN00001" in {op.serial_number for op in again.plan.operations}
    assert again.plan.of_kind("conflict") == []
    assert env.devices()["SN00001"]["name"] == "by-hand"
    assert env.devices()["SN00001"]["location"] == "DC7"
    assert [c["serial_number"] for c in cli("conflicts", "-o", "json").json()] == ["SN00002"]

    taken = cli("conflicts", "resolve", "SN00002", "name", "--take-source")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert env.devices()["SN00002"]["name"] == "sw-00002"
    last = cli("changes", "--serial", "SN00002", "--limit", "1", "-o", "json").json()[0]
    assert (last["operation"], last["status"], last["trigger"]) == ("update", "applied", "resolve")
    assert last["changes"]["name"] == {
        "before": "by-hand-2",
        "after": "sw-00002",
        "before_known": True,
    }
    assert cli("conflicts", "-o", "json").json() == []

    twice = cli("conflicts", "resolve", "SN00002", "name", "--take-source")
    assert twice.returncode == 1
    assert "no open conflict" in twice.stderr
    both = cli("conflicts", "resolve", "SN00001", "name", "--keep-inventory", "--take-source")
    assert both.returncode == 2


def test_plan_leaves_the_inbox_and_the_run_numbers_alone(world: World) -> None:
    cli, env = world.cli, world.env
    dropped = env.drop(rows(3))
    plan = cli("plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr  # changes to make
    assert "create" in plan.stdout
    assert dropped.exists()
    assert not (env.inbox / "processed").exists()
    assert cli("runs", "-o", "json").json() == []
    assert env.writes() == []

    assert env.run().run_id == 1  # the dry run took no number
    assert not dropped.exists()
    assert cli("plan", "--detailed-exitcode").returncode == 0  # nothing to do
    env.drop(_csv(rows(3), BAD_ROW))
    assert cli("plan", "--detailed-exitcode").returncode == 1  # a row rejected


def test_taking_the_source_value_is_refused_once_the_source_changed(audited: World) -> None:
    cli, env = audited.cli, audited.env
    devices = rows(4)
    devices[1].name = "renamed-at-the-source"
    devices[3].name = FORMULA
    env.drop(_csv(devices))
    with env.runner() as runner:  # the new file is read, not planned yet
        run_id = runner.store.begin_run("test", runner.policy.fingerprint())
        runner.ingest(run_id)
        runner.store.finish_run(run_id, "done")
    env.sandbox.clear_requests()

    taken = cli("conflicts", "resolve", "SN00002", "name", "--take-source")
    assert taken.returncode == 1
    assert "the sources changed since" in taken.stderr
    assert env.writes() == []  # the old source value was not written
    assert env.devices()["SN00002"]["name"] == "by-hand-2"


def _bare(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Done:
    """``syncd ARGS`` in ``cwd``, no config given (nor a token, unless in ``env``)."""
    here = Path.cwd()
    os.chdir(cwd)
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SYNCD_")}
    overrides |= {"COLUMNS": "80", **(env or {})}
    try:
        with CliRunner().isolation(env=overrides) as (out, err, _):
            common.console._console = common.err_console._console = None
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            return Done(code, out.getvalue().decode(), err.getvalue().decode())
    finally:
        os.chdir(here)


def test_version_and_help_speak_plainly(tmp_path: Path, restored_logging: None) -> None:
    from syncd import __version__

    version = _bare("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"syncd {__version__}")
    for command in (["approve"], ["retry"], ["changes"], ["revert"], ["conflicts", "resolve"]):
        shown = _bare(*command, "--help", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "range>" not in shown.stdout
        assert "<list[" not in shown.stdout
        assert "<str>" not in shown.stdout
        assert "<path>" not in shown.stdout
    assert "--run ID" in _bare("retry", "--help", cwd=tmp_path).stdout
    usage = _bare("approve", "--help", cwd=tmp_path).stdout.splitlines()[0]
    assert usage.endswith("approve [OPTIONS] RUN")


def test_config_check_reads_syncd_toml_here_and_wants_what_a_run_needs(
    tmp_path: Path, sandbox: SandboxProcess, restored_logging: None
) -> None:
    missing = _bare("config", "check", cwd=tmp_path)
    assert missing.returncode == 2
    assert "syncd.toml" in missing.stderr
    env = RunEnv(sandbox=sandbox, inbox=tmp_path, store_url=f"sqlite:///{tmp_path / 's.db'}")
    env.write_config(tmp_path / "syncd.toml")
    no_token = _bare("config", "check", cwd=tmp_path)
    assert no_token.returncode == 2
    assert "inventory.token" in no_token.stderr
    token = {"SYNCD_INVENTORY__TOKEN": sandbox.token.get_secret_value()}
    found = _bare("config", "check", cwd=tmp_path, env=token)
    assert found.returncode == 0, found.stderr
    assert "syncd.toml: OK" in found.stdout
    env.sandbox.load(load_form(rows(2)))
    online = _bare("config", "check", "--online", cwd=tmp_path, env=token)
    assert online.returncode == 0, online.stderr
    assert "accepted: 2 device(s) listed" in " ".join(online.stdout.split())
    wrong = _bare(
        "config", "check", "--online", cwd=tmp_path, env={"SYNCD_INVENTORY__TOKEN": "x" * 20}
    )
    assert wrong.returncode == 3  # fatal: the API refused the token
    assert "401" in wrong.stderr
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = {**token, "SYNCD_INVENTORY__BASE_URL": f"http://127.0.0.1:{port}/api/v1"}
    refused = _bare("config", "check", "--online", cwd=tmp_path, env=nowhere)
    assert refused.returncode == 4
    assert f"127.0.0.1:{port}" in " ".join(refused.stderr.split())


def test_a_file_still_being_written_is_reported_waiting(world: World) -> None:
    world.env.csv_options = {"stable_seconds": 600}
    world.env.write_config(world.config)
    fresh = world.env.inbox / "fresh.csv"
    fresh.write_text(_csv(rows(2)), encoding="utf-8")
    plan = world.cli("plan")
    assert plan.returncode == 0, plan.stderr
    said = " ".join(plan.stdout.split())
    assert "fresh.csv: waiting:" in said
    assert "s left (stable_seconds = 600)" in said
    assert fresh.exists()


def test_drift_names_each_orphan_with_when_it_falls_due(world: World) -> None:
    cli, env = world.cli, world.env
    env.policy = {"orphan_grace_runs": 3, "orphan_grace_hours": 24}
    env.write_config(world.config)
    env.drop(rows(3))
    assert env.run().status == "done"
    env.drop(rows(2))
    assert env.run().status == "done"

    found = cli("drift", "-o", "json").json()
    [orphan] = found["orphans_waiting"]
    assert orphan["serial_number"] == "SN00003"
    assert orphan["runs_left"] == 2
    missing_since = datetime.fromisoformat(orphan["missing_since"])
    assert datetime.fromisoformat(orphan["due_not_before"]) == missing_since + timedelta(hours=24)
    table = cli("drift")
    assert "SN00003" in table.stdout
    said = " ".join(table.stdout.split())
    assert "deleted once 2 more run(s) miss it, not before" in said
    assert env.devices()["SN00003"]  # still there


def test_show_gives_a_failed_run_its_error(world: World) -> None:
    world.env.drop(rows(2))
    with (
        pytest.raises(AuthenticationError),
        world.env.runner(token=SecretStr("wrong-token-0123")) as runner,
    ):
        runner.run(dry_run=False)
    shown = world.cli("show", "1", "-o", "json").json()
    assert shown["status"] == "failed"
    assert "401" in shown["error"]
    table = world.cli("show", "1")
    assert "failed" in table.stdout
    assert "401" in table.stdout
    assert "wrong-token-0123" not in table.stdout + shown["error"]


NETBOX_EXPORT = (
    "Name,Status,Tenant,Site,Type,Serial number,IP Address\n"
    "edge-1,Active,Acme Corp IT,DC1,Cisco Catalyst 9300,NB001,10.99.0.11/24\n"
    "edge-2,Planned,Globex Retail,DC2,FortiGate 100F,NB002,\n"
)


def test_a_netbox_ui_export_is_read_when_the_policy_ignores_status(world: World) -> None:
    env = world.env
    env.drop(NETBOX_EXPORT, name="netbox_devices.csv")
    result = env.run()  # the default policy leaves status to the inventory
    assert result.ingest.rejects == 0
    devices = env.devices()
    assert devices["NB001"]["ip_address"] == "10.99.0.11"
    assert devices["NB002"]["organization"]["id"] == 2

    env.policy = {"fields": {"status": {"mode": "managed"}}}
    env.drop(NETBOX_EXPORT.replace("edge-1", "edge-one"), name="again.csv")
    managed = env.run()  # now the column is read, and its words are not statuses
    assert managed.ingest.rejects == 2
    assert "not a status" in managed.rejects[0].reason


#: NetBox 4's device list exported with its default columns, plus ``Serial number``.
NETBOX_DEFAULT_EXPORT = (
    "Name,Status,Tenant,Site,Location,Rack,Role,Manufacturer,Type,IP Address,Serial number\n"
    "edge-3,Active,Acme Corp IT,DC1,Hall A,R12,Router,Cisco,Cisco Catalyst 9300,"
    "10.99.0.13/24,NB003\n"
    "edge-4,Offline,Acme Corp IT,DC2,,,Firewall,Fortinet,FortiGate 100F,,NB004\n"
    "edge-5,Active,Acme Corp IT,DC1,Hall B,R2,Router,Cisco,Cisco Catalyst 9300,10.99.0.15,NB005\n"
)


def test_a_netbox_default_export_joins_site_and_location_as_the_connector_does(
    world: World,
) -> None:
    world.env.drop(NETBOX_DEFAULT_EXPORT, name="netbox_default.csv")
    result = world.env.run()
    assert result.ingest.rejects == 0
    devices = world.env.devices()
    assert devices["NB003"]["location"] == "DC1 / Hall A"  # Rack is not mapped by default
    assert devices["NB004"]["location"] == "DC2"
    assert devices["NB005"]["location"] == "DC1 / Hall B"  # a plain row, read alike
    assert devices["NB003"]["ip_address"] == "10.99.0.13"


def test_a_reader_that_stops_early_gets_no_traceback(world: World) -> None:
    bad = "".join(
        f"BAD{n},b,Cisco Catalyst 9300,Acme Corp IT,999.0.0.{n},DC1\n" for n in range(3000)
    )
    world.env.drop(_csv([], bad))
    assert world.env.run().ingest.rejects == 3000
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    command = [sys.executable, "-m", "syncd", "rejects", "-o", "json", "--limit", "0"]
    with subprocess.Popen(
        [*command, "--config", str(world.config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # as `syncd rejects -o json | head -1`
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline() == "[\n"
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert "Traceback" not in err
    assert code in (0, 1), (code, err)
