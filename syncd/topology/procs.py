"""One process of the local topology: started with its output in a log file, waited for
until it says it is ready, stopped with SIGTERM (then SIGKILL after a grace period).

Each process runs in a session of its own, so a Ctrl-C in the terminal reaches the
script alone, which then stops the processes in order (the API first, the store last)
instead of all of them at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncd.topology import LocalStackError

#: How long a process may take to say it is ready.
START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def clean_environment() -> dict[str, str]:
    """This process's environment without ``SYNCD_*``: the config file is the truth."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("SYNCD_")}


@dataclass
class Process:
    """A running process of the topology, named for people (``worker-2``)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    grace: float = 30.0

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """What it printed so far."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def died(self) -> LocalStackError:
        """The error saying it exited, with its code and where its log is."""
        return LocalStackError(
            f"{self.name} exited with code {self.popen.returncode} (its log: {self.log})"
        )

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``ready`` until true; ``LocalStackError`` if the process exits first or
        ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running:
                raise self.died()
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"{self.name} did not {what} within {timeout:.0f} s (its log: {self.log})"
                )
            time.sleep(0.1)

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The first line of its output that contains ``text`` (waiting for it)."""
        found: list[str] = []

        def seen() -> bool:
            found.extend(line for line in self.output().splitlines() if text in line)
            return bool(found)

        self.wait_until(seen, f"print {text!r}", timeout)
        return found[0]

    def terminate(self) -> None:
        """SIGTERM, if it still runs: a graceful stop for every service here."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> str | None:
        """Wait until it exited (SIGKILL after ``grace`` seconds); ``None`` when it
        stopped cleanly, else what went wrong. A clean stop is exit code 0, or dying of
        the SIGTERM it was sent: uvicorn (the sandbox, ``syncd serve``) shuts down
        gracefully and then re-raises the signal, as a shell expects."""
        try:
            code = self.popen.wait(self.grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            return (
                f"{self.name} was killed: not stopped {self.grace:.0f} s after SIGTERM ({self.log})"
            )
        if code in (0, -signal.SIGTERM):
            return None
        return f"{self.name} exited with code {code} (its log: {self.log})"


def start(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    grace: float = 30.0,
) -> Process:
    """Start ``command`` with stdin closed and stdout and stderr going to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else clean_environment(),
            start_new_session=True,
        )
    return Process(name, popen, log, grace)


def syncd_command(*args: str) -> list[str]:
    """``syncd ARGS`` run by this interpreter (the same installation as the script)."""
    return [sys.executable, "-m", "syncd", *args]
