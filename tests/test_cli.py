"""The ``syncd`` command as a user runs it: a real process, a config file, the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.sandbox.testing import SandboxProcess
from tests.runsupport import ORG_MAP, TYPE_MAP, RunEnv, method_counts, rows

CLI = [sys.executable, "-m", "syncd"]


def syncd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``syncd ARGS`` and return what it did (never raises on a non-zero exit)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.run(
        [*CLI, *args],
        env={**base, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(path: Path, base_url: str, tmp: Path, **policy: object) -> Path:
    lines = [
        "[inventory]",
        f'base_url = "{base_url}"',
        "[inventory.retry]",
        "wait_initial = 0.0",
        "wait_max = 0.0",
        "[store]",
        f'url = "sqlite:///{tmp / "syncd.db"}"',
        "[[connectors]]",
        'name = "procurement"',
        'plugin = "csv_drop"',
        "[connectors.options]",
        f'inbox = "{tmp / "inbox"}"',
        "stable_seconds = 0",
        "[policy]",
        *(f"{k} = {json.dumps(v)}" for k, v in policy.items()),
        "[policy.type_map]",
        *(f'"{k}" = {v}' for k, v in TYPE_MAP.items()),
        "[policy.organization_map]",
        *(f'"{k}" = {v}' for k, v in ORG_MAP.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def world(sandbox: SandboxProcess, tmp_path: Path) -> tuple[RunEnv, Path, dict[str, str]]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")
    config = write_config(
        tmp_path / "syncd.toml",
        sandbox.base_url,
        tmp_path,
        orphan_grace_runs=0,
        orphan_grace_hours=0,
    )
    token_env = {"SYNCD_INVENTORY__TOKEN": sandbox.token.get_secret_value()}
    return env, config, token_env


def test_config_check_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        "[inventory]\n"
        'base_url = "ftp://nowhere"\n'
        "page_size = 500\n"
        'token = "s3cr3t-in-the-file"\n'
        "\n"
        "[store]\n"
        'urll = "sqlite:///x.db"\n'
        "\n"
        "[[connectors]]\n"
        'name = "procurement"\n'
        'plugin = "csv_drop"\n'
        "[connectors.options]\n"
        'inbox = "/tmp/inbox"\n'
        'modee = "snapshot"\n',
        encoding="utf-8",
    )
    done = syncd("config", "check", str(config))
    assert done.returncode == 2
    out = done.stderr
    assert f"{config}:2" in out
    assert "base_url" in out
    assert f"{config}:3" in out
    assert f"{config}:4" in out
    assert "SYNCD_INVENTORY__TOKEN" in out
    assert f"{config}:7" in out
    assert "store.urll" in out
    assert f"{config}:14" in out
    assert "modee" in out
    assert "s3cr3t-in-the-file" not in out + done.stdout


def test_config_check_points_at_a_toml_syntax_error(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[inventory]\nbase_url = "http://x\n', encoding="utf-8")
    done = syncd("config", "check", str(config))
    assert done.returncode == 2
    assert f"{config}:2" in done.stderr
    assert "not valid TOML" in done.stderr


def test_example_config_is_valid(tmp_path: Path) -> None:
    example = syncd("config", "example")
    assert example.returncode == 0
    path = tmp_path / "syncd.toml"
    path.write_text(example.stdout, encoding="utf-8")
    (tmp_path / "var" / "inbox").mkdir(parents=True)  # the example's inbox, relative to cwd
    done = syncd(
        "config", "check", str(path), cwd=tmp_path, env={"SYNCD_INVENTORY__TOKEN": "t" * 20}
    )
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_environment_overrides_the_file_and_is_named_in_errors(tmp_path: Path) -> None:
    example = syncd("config", "example").stdout
    path = tmp_path / "syncd.toml"
    path.write_text(example, encoding="utf-8")
    done = syncd("config", "check", str(path), env={"SYNCD_INVENTORY__PAGE_SIZE": "7"})
    assert done.returncode == 2
    assert "environment SYNCD_INVENTORY__PAGE_SIZE" in done.stderr


def test_plan_json_is_a_dry_run(world: tuple[RunEnv, Path, dict[str, str]]) -> None:
    env, config, token = world
    env.drop(rows(6))
    done = syncd("plan", "--json", "--config", str(config), env=token)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["dry_run"] is True
    assert [op["operation"] for op in answer["plan"]] == ["create"] * 6
    assert answer["plan"][0]["changes"]["type"]["after"] == 3
    assert env.writes() == []


def test_run_once_then_nothing_to_do(world: tuple[RunEnv, Path, dict[str, str]]) -> None:
    env, config, token = world
    env.drop(rows(5))
    first = syncd("run", "--once", "--config", str(config), env=token)
    assert first.returncode == 0, first.stderr
    assert "5 applied, 0 failed" in first.stdout
    assert method_counts(env.writes()) == {"POST": 5}
    env.sandbox.clear_requests()

    second = syncd("run", "--once", "--config", str(config), env=token)
    assert second.returncode == 0, second.stderr
    assert "0 applied" in second.stdout
    assert env.writes() == []
    secret = token["SYNCD_INVENTORY__TOKEN"]
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert secret not in output

    audit = syncd("changes", "--json", "--config", str(config))
    assert audit.returncode == 0, audit.stderr
    assert sorted(c["status"] for c in json.loads(audit.stdout)) == ["applied"] * 5


def test_held_run_exits_5_and_approve_applies_it(
    world: tuple[RunEnv, Path, dict[str, str]],
) -> None:
    env, config, token = world
    devices = rows(10)
    env.drop(devices)
    assert syncd("run", "--once", "--config", str(config), env=token).returncode == 0
    env.drop(devices[:4])
    env.sandbox.clear_requests()

    held = syncd("run", "--once", "--config", str(config), env=token)
    assert held.returncode == 5, held.stdout + held.stderr
    assert "HELD" in held.stdout
    assert env.writes() == []
    runs = syncd("runs", "--config", str(config))
    assert "held" in runs.stdout

    run_id = held.stdout.split("syncd approve ")[1].split()[0]
    approved = syncd("approve", run_id, "--by", "alice", "--config", str(config), env=token)
    assert approved.returncode == 0, approved.stderr
    assert "6 change(s) released by alice" in approved.stdout
    assert method_counts(env.writes()) == {"DELETE": 6}
    assert set(env.devices()) == {r.serial_number for r in devices[:4]}


def test_missing_token_is_a_clear_config_error(
    world: tuple[RunEnv, Path, dict[str, str]],
) -> None:
    _env, config, _token = world
    done = syncd("plan", "--config", str(config))
    assert done.returncode == 2
    assert "SYNCD_INVENTORY__TOKEN" in done.stderr


def test_wrong_token_is_fatal_and_not_printed(world: tuple[RunEnv, Path, dict[str, str]]) -> None:
    env, config, _token = world
    env.drop(rows(2))
    wrong = "wrong-token-0123456789"
    done = syncd("run", "--once", "--config", str(config), env={"SYNCD_INVENTORY__TOKEN": wrong})
    assert done.returncode == 3
    assert "401" in done.stderr
    assert wrong not in done.stdout + done.stderr


def test_demo_runs_end_to_end_in_one_process(tmp_path: Path) -> None:
    done = syncd("demo", "--once", "--workdir", str(tmp_path / "demo"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run 1 applied 40 change(s); run 2 made 0 write call(s)" in " ".join(done.stdout.split())
    assert "procurement.csv:42" in done.stdout  # the bad IP row, by line


def test_demo_runs_the_embedded_daemon_end_to_end(tmp_path: Path) -> None:
    done = syncd("demo", "--workdir", str(tmp_path / "demo"), timeout=300)
    out = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done" in out
    assert "{'applied': 40}" in out  # picked up on the schedule and applied
    assert "processed/procurement.csv:42" in out  # the bad IP row, by line, where it lies now
    assert "0 write call(s) (nothing had changed)" in out  # the triggered run
    assert "stopped with exit code 0" in out
    assert "0 change(s) left on their way" in out
    assert "43 devices in the inventory" in out


def test_config_check_names_unknown_policy_fields_and_sources(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        "[[connectors]]\n"
        'name = "procurement"\n'
        'plugin = "csv_drop"\n'
        "[connectors.options]\n"
        f'inbox = "{tmp_path}"\n'
        "[policy]\n"
        'source_priority = ["procurment"]\n'
        "[policy.fields.colour]\n"
        'mode = "managed"\n',
        encoding="utf-8",
    )
    done = syncd("config", "check", str(config))
    assert done.returncode == 2
    assert "colour" in done.stderr
    assert f"{config}:8" in done.stderr
    assert "'procurment'" in done.stderr
    assert f"{config}:7" in done.stderr


def test_relative_store_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "syncd.toml"
    config.write_text('[store]\nurl = "sqlite:///state/syncd.db"\n', encoding="utf-8")
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    done = syncd(
        "config", "check", str(config), cwd=elsewhere, env={"SYNCD_INVENTORY__TOKEN": "t" * 20}
    )
    assert done.returncode == 0, done.stderr
    assert f"sqlite:///{folder / 'state' / 'syncd.db'}" in " ".join(done.stdout.split())


def test_demo_config_sets_each_key_in_its_own_section(tmp_path: Path) -> None:
    import tomllib

    from syncd.cli.demo import demo_config

    config = tomllib.loads(demo_config("http://127.0.0.1:9/api/v1", tmp_path))
    (connector,) = config["connectors"]
    assert connector["schedule"] == "2s"  # the drop is picked up within seconds
    assert config["retention"]["schedule"] == "1d"  # not pruning every 2 s
    assert connector["options"]["inbox"] == str(tmp_path / "inbox")
    assert config["store"]["url"] == f"sqlite:///{tmp_path / 'syncd.db'}"
