"""The daemon act of ``syncd demo``: the embedded daemon picks a drop up on its schedule.

The daemon is a process of its own (``syncd daemon``), exactly as a user starts it;
this module only drops the file, watches the store, asks for a run on demand, shows
the audit log and stops the daemon with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.table import Table

from syncd import broker
from syncd.cli.common import EXIT_FAILED, console, err_console
from syncd.config import load_settings
from syncd.sandbox.testing import SandboxProcess
from syncd.service import audit
from syncd.service.daemon import request_run
from syncd.store import RunRow, Store

T = TypeVar("T")

#: How long the demo waits for the daemon to do each step.
STEP_TIMEOUT = 90.0


def daemon_demo(sandbox: SandboxProcess, config: Path, workdir: Path, drop_text: str) -> None:
    """Run the daemon act (see the module)."""
    settings = load_settings(config)
    log_file = workdir / "daemon.log"
    env = {**os.environ, "SYNCD_INVENTORY__TOKEN": sandbox.token.get_secret_value()}
    console.print(f"sandbox: {sandbox.base_url} (6 devices already in the inventory)")
    console.print(f"config:  {config} (the inbox is read every 2 s)")
    console.print(f"daemon:  syncd daemon --config {config}   (its log: {log_file})\n")
    with log_file.open("wb") as log_out:
        daemon = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, "-m", "syncd", "daemon", "--config", str(config)],
            env=env,
            stdout=log_out,
            stderr=subprocess.STDOUT,
        )
        try:
            with Store.from_settings(settings.store) as store:
                _wait(lambda: _ready(log_file), "the daemon to start", daemon)
                _act(sandbox, store, config, workdir / "inbox", drop_text, daemon=daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()


def _ready(log_file: Path) -> bool | None:
    """True once the worker says it is ready (Celery's "... ready." line)."""
    text = log_file.read_text(encoding="utf-8", errors="replace")
    return True if " ready." in text else None


def _act(
    sandbox: SandboxProcess,
    store: Store,
    config: Path,
    inbox: Path,
    drop_text: str,
    *,
    daemon: subprocess.Popen[bytes],
) -> None:
    console.rule("the procurement drop arrives; the daemon picks it up on its schedule")
    started = time.monotonic()
    drop = inbox / "procurement.csv"
    part = drop.with_suffix(".csv.part")  # written under an ignored name, then renamed
    part.write_text(drop_text, encoding="utf-8")
    part.rename(drop)
    first = _wait(lambda: _finished_run_with_changes(store), "the drop to be applied", daemon)
    console.print(
        f"run {first.id} ({first.trigger}) {first.status} {_seconds(started)} after the drop: "
        f"{store.change_counts(first.id)}",
        highlight=False,
    )
    for place in audit.list_rejects(store, run_id=first.id, limit=10).items[::-1]:
        where = audit.location_now(place)  # in processed/ now
        console.print(f"  [bright_red]rejected[/] {where}: {place.reject.reason}")

    console.rule("a run on demand: syncd trigger procurement")
    writes_before = sandbox.stats().writes
    request = request_run(store, "procurement", source="cli")
    try:
        broker.send(load_settings(config), broker.RUN_CONNECTOR, "procurement", trigger="request")
    except Exception as exc:  # noqa: BLE001 - the daemon's sweeper takes the request anyway
        console.print(f"(the broker did not take the message: {exc}; the sweeper will)")
    asked = time.monotonic()
    answered = _wait(lambda: _answered(store, request), "the triggered run", daemon)
    console.print(
        f"request {request} answered by run {answered.id} in {_seconds(asked)}: "
        f"{answered.status}, {sandbox.stats().writes - writes_before} write call(s) "
        "(nothing had changed)",
        highlight=False,
    )

    console.rule("the audit log: syncd runs / syncd changes")
    console.print(_runs_table(store.runs(limit=10, idle=False)))
    console.print(f"changes of run {first.id}: syncd changes --run {first.id} --config {config}")

    console.rule("stop: SIGTERM")
    stopping = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(timeout=STEP_TIMEOUT)
    waiting = store.count_waiting()
    console.print(
        f"the daemon stopped with exit code {code} in {_seconds(stopping)}; "
        f"{waiting} change(s) left on their way",
        highlight=False,
    )
    stats = sandbox.stats()
    console.rule("summary")
    console.print(
        f"{len(_serials(sandbox))} devices in the inventory; the sandbox answered "
        f"{stats.total} requests (peak {stats.peak_per_second}/s, the limit being 50/s)."
    )
    if code != 0 or waiting:
        raise typer.Exit(EXIT_FAILED)


def _wait(probe: Callable[[], T | None], what: str, daemon: subprocess.Popen[bytes]) -> T:
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        if daemon.poll() is not None:
            err_console.print(f"the daemon stopped (exit {daemon.returncode}) before {what}")
            raise typer.Exit(EXIT_FAILED)
        time.sleep(0.2)
    err_console.print(f"timed out after {STEP_TIMEOUT:.0f} s waiting for {what}")
    raise typer.Exit(EXIT_FAILED)


def _finished_run_with_changes(store: Store) -> RunRow | None:
    for run in store.runs(limit=20):
        if run.status in ("done", "failed") and store.change_counts(run.id):
            return run
    return None


def _answered(store: Store, request: int) -> RunRow | None:
    row = store.trigger(request)
    if row is None or row.run_id is None or row.state == "running":
        return None
    run = store.run(row.run_id)
    return run if run is not None and run.status not in ("planning", "applying") else None


def _runs_table(runs: list[RunRow]) -> Table:
    table = Table("run", "trigger", "status", "operations")
    for run in runs:
        ops = run.summary.get("operations", {})
        brief = ", ".join(f"{k} {v}" for k, v in ops.items() if v) if ops else "-"
        table.add_row(str(run.id), run.trigger, run.status, brief)
    return table


def _serials(sandbox: SandboxProcess) -> set[str]:
    serials: set[str] = set()
    with sandbox.client() as client:
        offset = 0
        while True:
            page = client.get(
                "inventory_device_serial/", params={"limit": 100, "offset": offset}
            ).json()
            serials.update(item["serial_number"] for item in page["results"])
            if not page["next"]:
                return serials
            offset += 100


def _seconds(since: float) -> str:
    return f"{time.monotonic() - since:.1f} s"
