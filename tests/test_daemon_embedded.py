"""The embedded daemon as a user runs it: one real ``syncd daemon`` process (worker and
beat inside, the filesystem broker, SQLite) against the sandbox over HTTP.

What is checked is what a user would look at: the inventory, the write calls it
received (the sandbox's request log), the audit log (``syncd runs``/``changes``), the
exit status, and the processes left behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncd.sandbox.testing import SandboxProcess
from syncd.store import Store
from tests.daemonsupport import (
    all_changes,
    assert_applied_once,
    queued_changes,
    settled,
    waiting,
)
from tests.procs import SyncdProcess, process_gone, wait_for
from tests.runsupport import RunEnv, rows

pytestmark = pytest.mark.slow

#: A clean stop may take this long at most (the change in flight, then the broker).
STOP_BOUND = 10.0


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    world = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")
    world.daemon = {"data_dir": str(tmp_path / "daemon"), "sweep_interval": 1}
    world.inventory = {"rate_limit": {"requests_per_second": 20.0, "burst": 20}}
    return world


def _start(env: RunEnv, tmp_path: Path, processes: list[SyncdProcess], name: str) -> SyncdProcess:
    config = env.write_config(tmp_path / f"{name}.toml")
    daemon = env.spawn("daemon", config=config, log=tmp_path / f"{name}.log")
    processes.append(daemon)
    return daemon


def _syncd(env: RunEnv, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    secret = {"SYNCD_INVENTORY__TOKEN": env.sandbox.token.get_secret_value()}
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args, "--config", str(config)],
        env={**os.environ, **secret, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stop(daemon: SyncdProcess) -> float:
    """SIGTERM; the seconds it took to exit 0."""
    begun = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code = daemon.wait(60)
    took = time.monotonic() - begun
    output = daemon.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    return took


def _posts(env: RunEnv) -> int:
    return sum(r.method == "POST" for r in env.sandbox.requests())


def test_schedule_sigterm_mid_batch_restart_trigger_and_audit(
    env: RunEnv, tmp_path: Path, processes: list[SyncdProcess]
) -> None:
    devices = rows(40)
    env.schedule = "1s"
    daemon = _start(env, tmp_path, processes, "scheduled")
    env.drop(devices)

    wait_for(lambda: _posts(env) >= 10, "the scheduled run to be applying", timeout=60)
    beat = daemon.children()
    took = _stop(daemon)

    assert took < STOP_BOUND
    assert beat
    assert all(process_gone(pid) for pid in beat)  # embedded beat went with it
    left = waiting(env.store_url)
    assert left  # stopped mid-batch
    assert [c.id for c in left if c.status == "applying"] == []  # nothing left claimed
    queue = tmp_path / "daemon" / "broker" / "queue"
    dispatched = [c.id for c in left if c.status == "dispatched"]
    assert set(dispatched) <= set(queued_changes(queue))  # none dispatched and lost

    env.schedule = None  # on demand only from now on
    daemon = _start(env, tmp_path, processes, "restarted")
    wait_for(lambda: settled(env.store_url, 40), "the changes left to be applied", timeout=60)
    assert_applied_once(env, devices)

    moved = dataclasses.replace(devices[0], location="DC9")
    env.drop([moved, *devices[1:]])
    config = tmp_path / "restarted.toml"
    triggered = _syncd(env, config, "trigger", "procurement", "--wait", "--timeout", "60")
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    assert "done" in triggered.stdout
    assert env.devices()[moved.serial_number]["location"] == "DC9"  # applied when it returns

    runs = _syncd(env, config, "runs")
    assert runs.returncode == 0, runs.stderr
    assert "schedule" in runs.stdout
    assert "cli" in runs.stdout
    assert "create 40" in runs.stdout
    listed = _syncd(env, config, "changes", "--json", "--limit", "100")
    shown = [(c["operation"], c["status"]) for c in json.loads(listed.stdout)]
    assert sorted(set(shown)) == [("create", "applied"), ("update", "applied")]
    assert shown.count(("create", "applied")) == 40
    assert _stop(daemon) < STOP_BOUND
    with Store.open(env.store_url) as store:
        assert {r.status for r in store.runs()} <= {"done", "idle"}  # idle: empty polls


def test_kill_9_mid_batch_then_restart_applies_every_change_once(
    env: RunEnv, tmp_path: Path, processes: list[SyncdProcess]
) -> None:
    devices = rows(40)
    env.schedule = "1s"
    env.outbox = {"dispatch_lease": 3}  # prompts the killed worker had taken come back soon
    env.sandbox.set_faults(latency_ms=100)  # writes are in flight when it is killed
    daemon = _start(env, tmp_path, processes, "killed")
    env.drop(devices)

    wait_for(lambda: _posts(env) >= 12, "the scheduled run to be applying", timeout=60)
    beat = daemon.children()
    daemon.signal(signal.SIGKILL)
    assert daemon.wait(10) == -signal.SIGKILL
    wait_for(lambda: all(process_gone(pid) for pid in beat), "embedded beat to go too", 10)
    assert waiting(env.store_url)  # killed mid-batch

    daemon = _start(env, tmp_path, processes, "restarted")
    wait_for(lambda: settled(env.store_url, 40), "every change to be applied", timeout=90)
    assert_applied_once(env, devices)
    failed = [c for c in all_changes(env.store_url) if c.status == "failed"]
    assert all("abandoned" in (c.error or "") for c in failed)  # re-planned, never re-sent
    assert _stop(daemon) < STOP_BOUND
