"""The world the state machine drives: a sandbox, an inbox, a store, a config, people
editing the inventory by hand, and ``syncd run --once`` processes that die on cue.

Everything here speaks the real protocols: CSV files in a real inbox, the sandbox
over HTTP, runs in-process through ``Runner`` or as a real ``syncd`` subprocess.
A process death is a real signal to that subprocess, sent while the sandbox holds
one of its requests (a ``stall`` script entry): with ``SIGKILL`` no ``finally`` and
no handler runs, exactly as with ``kill -9``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from syncd.config import Settings
from syncd.inventory import InventoryClient
from syncd.sandbox.testing import RequestRecord, SandboxProcess
from syncd.service import Runner, RunResult
from syncd.store import ChangeRow, RunRow, Store
from tests.runsupport import ORG_MAP, TYPE_MAP, WRITES

#: Serials the procurement files may list (people may create them by hand too).
SOURCE_SERIALS: tuple[str, ...] = ("A1", "A2", "A3")
#: Serials only people use: no source ever lists them.
STRANGER_SERIALS: tuple[str, ...] = ("X1",)
SERIALS: tuple[str, ...] = SOURCE_SERIALS + STRANGER_SERIALS

#: A cell the CSV reader rejects (the row becomes a located reject).
BAD_IP = "10.0.0.300"
#: A type no mapping knows (the engine rejects the record).
UNKNOWN_TYPE = "Quantum Router 9000"

HEADER = ("serial_number", "name", "device_type", "organization", "mgmt_ip", "location")
#: The list fields people edit by hand (detail-only fields are not seen by design).
HAND_FIELDS: tuple[str, ...] = ("name", "location", "ip_address")

#: How long the sandbox holds the request a death is timed on: the signal goes as soon
#: as the request shows in the sandbox's log (polled every 5 ms), so 3 s is far past
#: any kill; a SIGTERM or SIGINT stop waits for the held answer, so a longer hold only
#: makes those steps slower.
STALL_MS = 3_000
#: Longest wait for a subprocess to reach its chosen request, or to exit.
PROCESS_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Row:
    """One procurement CSV row, valid or with one bad cell."""

    serial: str
    name: str
    device_type: str
    organization: str
    ip: str
    location: str

    @property
    def bad_cell(self) -> bool:
        """The reader rejects this row (``mgmt_ip = 10.0.0.300``)."""
        return self.ip == BAD_IP

    @property
    def mappable(self) -> bool:
        """A valid row whose type and organization the config maps."""
        return not self.bad_cell and self.device_type in TYPE_MAP

    def cells(self) -> list[str]:
        return [self.serial, self.name, self.device_type, self.organization, self.ip, self.location]

    def api_values(self) -> dict[str, Any]:
        """What the inventory should hold for this row (list-shape values)."""
        return {
            "name": self.name,
            "type": TYPE_MAP[self.device_type],
            "organization": ORG_MAP[self.organization],
            "ip_address": self.ip,
            "location": self.location,
        }


def csv_text(rows: Iterable[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(row.cells())
    return out.getvalue()


def device_values(device: Mapping[str, Any]) -> dict[str, Any]:
    """A sandbox device (list or detail shape) in the form ``Row.api_values`` uses."""
    return {
        "name": device["name"],
        "type": device["type"]["id"],
        "organization": device["organization"]["id"],
        "ip_address": device.get("ip_address"),
        "location": device.get("location"),
    }


def toml_value(value: object) -> str:
    """``value`` as a TOML value (inline tables and arrays; strings in JSON's escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"no TOML form for {value!r}")


class Process(Protocol):
    """A running ``syncd`` command."""

    def poll(self) -> int | None: ...

    def wait(self, timeout: float) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    """Starts ``syncd <argv>`` as a process of its own."""

    def start(
        self, argv: list[str], *, env: dict[str, str], cwd: Path, output: Path
    ) -> Process: ...


class _Popen:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class SubprocessLauncher:
    """``python -m syncd <argv>``: a fresh interpreter each time (2 s of imports)."""

    def start(self, argv: list[str], *, env: dict[str, str], cwd: Path, output: Path) -> Process:
        with output.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
            )
        return _Popen(proc)


class _Forked:
    def __init__(self, zygote: ZygoteLauncher, pid: int) -> None:
        self.zygote = zygote
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        if self.code is None:
            self.code = self.zygote.exit_code(self.pid, timeout=0)
        return self.code

    def wait(self, timeout: float) -> int:
        if self.code is None:
            self.code = self.zygote.exit_code(self.pid, timeout=timeout)
        if self.code is None:
            raise subprocess.TimeoutExpired(f"syncd (pid {self.pid})", timeout)
        return self.code

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait(PROCESS_TIMEOUT)


class ZygoteLauncher:
    """Forks ``syncd`` from a pre-imported interpreter (``tests.properties.zygote``):
    the same command in a process of its own, 100 times faster to start."""

    def __init__(self) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.properties.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
            text=True,
            bufsize=1,
        )
        self._answers: queue.Queue[dict[str, int]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="zygote", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))

    def start(self, argv: list[str], *, env: dict[str, str], cwd: Path, output: Path) -> Process:
        assert self.proc.stdin is not None
        command = {"argv": argv, "env": env, "cwd": str(cwd), "output": str(output)}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = self._answers.get(timeout=PROCESS_TIMEOUT)
        return _Forked(self, answer["pid"])

    def exit_code(self, pid: int, *, timeout: float) -> int | None:
        try:
            answer = self._answers.get(timeout=timeout) if timeout else self._answers.get_nowait()
        except queue.Empty:
            return None
        assert answer["pid"] == pid, answer
        return answer["exit"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True, slots=True)
class Death:
    """How a subprocess run ended: the signal sent (if any) and where it was waiting."""

    signal: int | None
    exit_code: int
    at: RequestRecord | None
    output: str


@dataclass
class World:
    """One example's world. The sandbox is shared and reset; the rest is fresh."""

    sandbox: SandboxProcess
    root: Path
    policy: dict[str, Any] = field(default_factory=dict)
    _drops: int = 0
    _store: Store | None = None
    _client: InventoryClient | None = None

    def __post_init__(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._toml(), encoding="utf-8")

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root / 'syncd.db'}"

    @property
    def config_path(self) -> Path:
        return self.root / "syncd.toml"

    # -- configuration ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The whole configuration, as the TOML file holds it (no token)."""
        return {
            "inventory": {
                "base_url": self.sandbox.base_url,
                "timeout": 60.0,
                "retry": {"attempts": 3, "wait_initial": 0.0, "wait_max": 0.0, "wait_jitter": 0.0},
                "rate_limit": {"requests_per_second": 500.0, "burst": 500},
            },
            "store": {"url": self.store_url},
            "connectors": [
                {
                    "name": "procurement",
                    "plugin": "csv_drop",
                    "options": {
                        "inbox": str(self.inbox),
                        "stable_seconds": 0,
                        "max_error_ratio": 0.5,
                    },
                }
            ],
            "policy": {"type_map": TYPE_MAP, "organization_map": ORG_MAP, **self.policy},
            "logging": {"level": "WARNING", "format": "json"},
        }

    def settings(self) -> Settings:
        return Settings(**self.config())

    def _toml(self) -> str:
        return "".join(f"{key} = {toml_value(value)}\n" for key, value in self.config().items())

    # -- sources ------------------------------------------------------------------------------

    def drop(self, text: str) -> Path:
        """Drop a file into the inbox; later drops have later mtimes (read in order)."""
        self._drops += 1
        path = self.inbox / f"po-{self._drops:03d}.csv"
        path.write_text(text, encoding="utf-8")
        stamp = time.time() - 3600 + self._drops
        os.utime(path, (stamp, stamp))
        return path

    # -- syncd --------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store, open for the whole example (a run opens it at no cost then)."""
        if self._store is None:
            self._store = Store.open(self.store_url)
        return self._store

    @contextmanager
    def runner(self) -> Iterator[Runner]:
        settings = self.settings()
        if self._client is None:
            self._client = InventoryClient.from_settings(
                settings.inventory, token=self.sandbox.token
            )
        yield Runner(settings, self.store, self._client)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def run(self, *, dry_run: bool = False) -> RunResult:
        """One run in this process (``syncd run --once`` without the process)."""
        with self.runner() as runner:
            return runner.run(dry_run=dry_run)

    def run_process(
        self, launcher: Launcher, *, stall_at: int, stall: str, sig: signal.Signals | None
    ) -> Death:
        """``syncd run --once`` as a separate process; its ``stall_at``-th API request is
        held by the sandbox (``stall`` or ``stall_after_apply``) and, once that request
        is in the log, the process gets ``sig``. A run that makes fewer requests ends
        by itself."""
        self.sandbox.set_faults(script=["ok"] * (stall_at - 1) + [f"{stall}:{STALL_MS}"])
        self.sandbox.clear_requests()
        env = {**os.environ, "SYNCD_INVENTORY__TOKEN": self.sandbox.token.get_secret_value()}
        output = self.root / "process.log"
        process = launcher.start(
            ["run", "--once", "--config", str(self.config_path)],
            env=env,
            cwd=self.root,
            output=output,
        )
        try:
            sent, at = self._signal_when_held(process, stall_at, sig)
            code = process.wait(PROCESS_TIMEOUT)
        except BaseException:
            process.kill()
            raise
        self.sandbox.set_faults(script=[])
        text = output.read_text(encoding="utf-8", errors="replace")
        assert self.sandbox.token.get_secret_value() not in text
        return Death(signal=sent, exit_code=code, at=at, output=text[-4000:])

    def _signal_when_held(
        self, process: Process, stall_at: int, sig: signal.Signals | None
    ) -> tuple[int | None, RequestRecord | None]:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return None, None
            log = self.sandbox.requests()
            if len(log) >= stall_at:
                if sig is None:
                    return None, log[stall_at - 1]
                process.send_signal(sig)
                return int(sig), log[stall_at - 1]
            time.sleep(0.005)
        raise AssertionError(f"syncd never reached request {stall_at}")

    # -- what the API and the store hold ------------------------------------------------------

    def writes(self) -> list[RequestRecord]:
        return [r for r in self.sandbox.requests() if r.method in WRITES]

    def devices(self) -> dict[str, dict[str, Any]]:
        """Every device in the sandbox by serial (faults bypassed)."""
        saved = self.sandbox.faults()
        self.sandbox.set_faults(script=["ok"], hide_from_list=[])
        try:
            with self.sandbox.client() as api:
                page = api.get("inventory_device_serial/", params={"limit": 1000}).json()
        finally:
            self.sandbox.set_faults(script=saved["script"], hide_from_list=saved["hide_from_list"])
        assert page["next"] is None
        return {item["serial_number"]: item for item in page["results"]}

    def by_hand(self, method: str, serial: str | None, body: dict[str, Any] | None = None) -> int:
        """A person's call to the API; it meets no injected fault."""
        saved = self.sandbox.faults()
        self.sandbox.set_faults(script=["ok", *saved["script"]])
        path = "inventory_device_serial/" + (f"{serial}/" if serial and method != "POST" else "")
        with self.sandbox.client() as api:
            return api.request(method, path, json=body).status_code

    def read_store(self) -> StoreView:
        store = self.store
        unfinished = ("pending", "held", "applying")
        return StoreView(
            runs=store.runs(limit=5),
            unfinished=[c for s in unfinished for c in store.changes(status=s, limit=1000)],  # type: ignore[arg-type]
            ownership={
                c.serial_number: c.mirror.ownership
                for c in store.load_candidates(SERIALS)
                if c.mirror is not None
            },
        )


@dataclass(frozen=True, slots=True)
class StoreView:
    """What the checks read from the store (read-only)."""

    runs: list[RunRow]
    unfinished: list[ChangeRow]
    ownership: dict[str, str]

    @property
    def newest(self) -> RunRow | None:
        return self.runs[0] if self.runs else None
