"""Real processes for the tests: a throw-away ``redis-server``, and ``syncd`` commands
(``daemon``, ``worker``, ``beat``, ``trigger``...) run as processes of their own.

Everything listens on 127.0.0.1 only and is stopped when the test ends. Waiting for
a process to do real work polls with a deadline (``wait_for``); nothing sleeps for
behaviour that depends on the clock.

Redis: ``redis_server`` (a fixture) starts one per test, with append-only
persistence in the test's folder, so ``restart()`` brings the same data back on the
same port. Without a ``redis-server`` binary the test is skipped, unless
``SYNCD_REQUIRE_REDIS=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from syncd.topology.procs import free_port

REQUIRE_REDIS_ENV = "SYNCD_REQUIRE_REDIS"


def wait_for(
    condition: Callable[[], object],
    what: str,
    timeout: float = 30.0,
    state: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` (and ``state()``, what
    was seen instead) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            seen = f"; instead: {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


# -- redis-server ------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A ``redis-server`` on 127.0.0.1 with its data (AOF) in ``folder``."""

    binary: str
    folder: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers (the AOF, if any, is loaded first)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--dir", str(self.folder), "--appendonly", "yes" if self.appendonly else "no"]
        args += ["--appendfsync", "always"] if self.appendonly else []
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._ready, f"redis-server on port {self.port}", timeout=15)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"redis-server exited: {self.log()[-2000:]}")
        if not _listening(self.port):
            return False
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.exceptions.BusyLoadingError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(15)
        self.process = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop and start again on the same port and folder (what it persisted returns)."""
        self.stop(sig)
        self.start()

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


def redis_binary() -> str:
    """The ``redis-server`` binary, or skip (fail under ``SYNCD_REQUIRE_REDIS=1``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get(REQUIRE_REDIS_ENV) == "1":
            pytest.fail(f"redis-server is required ({REQUIRE_REDIS_ENV}=1) but not installed")
        pytest.skip("redis-server is not installed")
    return binary


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for this test, persisting to its folder."""
    server = RedisServer(redis_binary(), tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


# -- syncd as a process ------------------------------------------------------------------------


class SyncdProcess:
    """``syncd ARGS --config CONFIG`` running on its own; its output goes to a file (a
    pipe nobody reads would fill up and stall a long-running daemon)."""

    def __init__(
        self,
        args: list[str],
        *,
        config: Path,
        log: Path,
        env: Mapping[str, str],
    ) -> None:
        self.args = args
        self.log_path = log
        self._children: set[int] = set()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "syncd", *args, "--config", str(config)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def __repr__(self) -> str:
        return f"SyncdProcess({' '.join(self.args)}, pid={self.pid})"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """The pids of its child processes (embedded beat runs in one)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        found = [int(pid) for pid in text.split()]
        self._children.update(found)
        return found

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Its exit status; fails (after killing it) if it is still running after
        ``timeout`` seconds."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"{self!r} still running after {timeout:.0f} s:\n{self.output()[-4000:]}"
            ) from None
        return code

    def stop(self) -> None:
        """Make sure it and its children are gone (SIGKILL), for clean-up."""
        family = self.children() if self.running else []
        if self.running:
            self.process.kill()
        self.process.wait(10)
        for pid in {*family, *self._children}:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


def process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith(("Z", "X"))


@pytest.fixture
def processes() -> Iterator[list[SyncdProcess]]:
    """Register every ``SyncdProcess`` a test starts here: all are killed at the end."""
    started: list[SyncdProcess] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.stop()
