"""Test support for whole runs: a config, a store, an inbox and the sandbox, wired together."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config import Settings
from syncd.inventory import InventoryClient
from syncd.process import ProcessIdentity
from syncd.sandbox.testing import RequestRecord, SandboxProcess, SandboxToken
from syncd.service import Runner, RunResult
from syncd.store import Store
from tests.procs import SyncdProcess

#: The sandbox catalogue's ids, as the config maps the CSV's names onto them.
TYPE_MAP = {"Cisco ISR 4331": 1, "Cisco Catalyst 9300": 3, "FortiGate 100F": 6}
ORG_MAP = {"Acme Corp IT": 123, "Globex Retail": 2}

HEADER = ("serial_number", "name", "device_type", "organization", "ip_address", "location")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Row:
    """One procurement CSV row."""

    serial_number: str
    name: str
    device_type: str = "Cisco Catalyst 9300"
    organization: str = "Acme Corp IT"
    ip_address: str = ""
    location: str = "DC1"

    def cells(self) -> list[str]:
        return [getattr(self, name) for name in HEADER]


def rows(n: int, *, prefix: str = "SN", start: int = 1) -> list[Row]:
    """``n`` distinct, creatable rows."""
    return [
        Row(f"{prefix}{i:05d}", f"sw-{i:05d}", ip_address=f"10.1.{i // 250}.{i % 250 + 1}")
        for i in range(start, start + n)
    ]


def csv_text(items: Iterable[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for row in items:
        writer.writerow(row.cells())
    return out.getvalue()


@dataclass
class RunEnv:
    """One test's world: the sandbox (reset), an inbox, a store and a config."""

    sandbox: SandboxProcess
    inbox: Path
    store_url: str
    policy: dict[str, Any] = field(default_factory=dict)
    inventory: dict[str, Any] = field(default_factory=dict)
    csv_options: dict[str, Any] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=dict)
    daemon: dict[str, Any] = field(default_factory=dict)
    #: The connector's schedule in the daemon (``None``: on demand only).
    schedule: str | None = None
    _drops: int = 0

    def settings(self) -> Settings:
        return Settings(**self.config())

    def config(self) -> dict[str, Any]:
        """The configuration, as the TOML file would hold it (without the token)."""
        inventory = {
            "base_url": self.sandbox.base_url,
            "retry": {"attempts": 3, "wait_initial": 0.0, "wait_max": 0.0, "wait_jitter": 0.0},
            "rate_limit": {"requests_per_second": 500.0, "burst": 500},
            **self.inventory,
        }
        policy = {
            "type_map": TYPE_MAP,
            "organization_map": ORG_MAP,
            **self.policy,
        }
        connector: dict[str, Any] = {"name": "procurement", "plugin": "csv_drop"}
        if self.schedule is not None:
            connector["schedule"] = self.schedule
        connector["options"] = {"inbox": str(self.inbox), "stable_seconds": 0, **self.csv_options}
        return {
            "inventory": inventory,
            "store": {"url": self.store_url},
            "connectors": [connector],
            "policy": policy,
            "outbox": self.outbox,
            "daemon": self.daemon,
        }

    def write_config(self, path: Path) -> Path:
        """The configuration as a TOML file, for ``syncd`` run as a process."""
        path.write_text(toml_text(self.config()), encoding="utf-8")
        return path

    def syncd(self, *args: str, config: Path) -> subprocess.Popen[str]:
        """``syncd ARGS --config CONFIG`` as a process of its own (token in its environment)."""
        env = {**os.environ, "SYNCD_INVENTORY__TOKEN": self.sandbox.token.get_secret_value()}
        return subprocess.Popen(
            [sys.executable, "-m", "syncd", *args, "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def spawn(
        self,
        *args: str,
        config: Path,
        log: Path,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SyncdProcess:
        """``syncd ARGS`` as a long-running process, its output in ``log``."""
        secret = token if token is not None else self.sandbox.token.get_secret_value()
        extra = {"SYNCD_INVENTORY__TOKEN": secret, **(env or {})}
        return SyncdProcess(list(args), config=config, log=log, env=extra)

    def drop(self, items: Iterable[Row] | str, name: str | None = None) -> Path:
        """Drop a CSV into the inbox, old enough to be taken at once."""
        self._drops += 1
        path = self.inbox / (name or f"drop-{self._drops:03d}.csv")
        path.write_text(items if isinstance(items, str) else csv_text(items), encoding="utf-8")
        past = time.time() - 60
        os.utime(path, (past, past))
        return path

    @contextmanager
    def runner(self, **overrides: Any) -> Iterator[Runner]:
        """A runner over this world (closed afterwards)."""
        settings = self.settings()
        token = overrides.pop("token", self.sandbox.token)
        with (
            Store.open(self.store_url) as store,
            InventoryClient.from_settings(settings.inventory, token=token) as client,
        ):
            yield Runner(settings, store, client, **overrides)

    def record_plan_only(self, runner: Runner) -> int:
        """A run's first half: sources, mirror, plan, change rows; nothing applied yet."""
        run_id = runner.store.begin_run("test", runner.policy.fingerprint())
        runner.ingest(run_id)
        runner.refresh_mirror()
        runner.store.record_plan(run_id, runner.make_plan(run_id))
        return run_id

    def run(self, *, dry_run: bool = False) -> RunResult:
        """One whole run (``run --once``)."""
        with self.runner() as runner:
            return runner.run(dry_run=dry_run)

    # -- what the API saw and holds ------------------------------------------------------------

    def writes(self) -> list[RequestRecord]:
        """The write requests the sandbox received since the log was last cleared."""
        return [r for r in self.sandbox.requests() if r.method in WRITES]

    def devices(self, token: SandboxToken | None = None) -> dict[str, dict[str, Any]]:
        """Every device in the sandbox (that ``token`` may see), detail shape, by serial."""
        out: dict[str, dict[str, Any]] = {}
        with self.sandbox.client(token) as client:
            offset = 0
            while True:
                page = client.get(
                    "inventory_device_serial/", params={"limit": 100, "offset": offset}
                ).json()
                for item in page["results"]:
                    out[item["serial_number"]] = item
                if not page["next"]:
                    break
                offset += 100
        return out


#: A process on another machine: syncd cannot tell whether it lives, only wait out the lease.
REMOTE_OWNER = "other-host:4242:123456:boot-id-of-another-machine:pid-ns"


def dead_owner() -> str:
    """The identity of a process of this machine that has exited (its claims are
    recovered at once)."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        identity = ProcessIdentity.of_pid(child.pid)
    finally:
        child.kill()
        child.wait()
    assert identity is not None
    return str(identity)


def toml_text(config: Mapping[str, Any]) -> str:
    """A small TOML writer for test configs: tables of scalars, lists and sub-tables,
    and arrays of tables (``[[connectors]]``)."""
    lines: list[str] = []

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list | tuple):
            return "[" + ", ".join(value(v) for v in item) + "]"
        if isinstance(item, Mapping):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in item.items()) + "}"
        raise TypeError(f"cannot write {item!r} as TOML")

    def table(name: str, body: Mapping[str, Any], header: str) -> None:
        lines.append(header)
        nested = {k: v for k, v in body.items() if isinstance(v, Mapping)}
        for key, item in body.items():
            if key not in nested:
                lines.append(f"{json.dumps(key)} = {value(item)}")
        for key, item in nested.items():
            table(f"{name}.{key}", item, f"[{name}.{key}]")

    for name, body in config.items():
        if isinstance(body, list):
            for entry in body:
                table(name, entry, f"[[{name}]]")
        else:
            table(name, body, f"[{name}]")
    return "\n".join(lines) + "\n"


def method_counts(records: Sequence[RequestRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.method] = counts.get(record.method, 0) + 1
    return counts


def load_form(items: Iterable[Row], type_ids: Mapping[str, int] = TYPE_MAP) -> list[dict[str, Any]]:
    """Rows as the sandbox's control API loads them (devices already in the inventory)."""
    return [
        {
            "serial_number": r.serial_number,
            "name": r.name,
            "type": type_ids[r.device_type],
            "organization": ORG_MAP[r.organization],
            "ip_address": r.ip_address or None,
            "location": r.location,
        }
        for r in items
    ]
