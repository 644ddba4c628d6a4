"""A throw-away PostgreSQL cluster on 127.0.0.1 for ``--postgres``: ``initdb`` into a
temporary folder, ``pg_ctl start`` on a free port with trust authentication, one
database ``syncd``; ``stop`` shuts it down and deletes the folder.

Trust authentication on loopback is what makes it throw-away: no password exists to
leak, and anyone on this machine may connect while it runs. Never use it for data
you want to keep. PostgreSQL refuses to run as root, so as root its programs run as
the ``postgres`` user (``runuser``), in a folder that user owns (under the system's
temporary folder, which that user can reach, unlike a home folder).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from syncd.topology import LocalStackError
from syncd.topology.procs import free_port

USER = "syncd"
DATABASE = "syncd"


def find_programs() -> Path:
    """The folder of PostgreSQL's programs (the newest installed version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise LocalStackError("--postgres: no PostgreSQL programs (initdb) found; install postgresql")


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise LocalStackError(
            "--postgres: running as root and there is no postgres user to run the server"
        ) from None
    return "postgres"


@dataclass
class LocalPostgres:
    """A running throw-away cluster."""

    bindir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        """The store URL of its ``syncd`` database (no password: trust authentication)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(  # noqa: S603 - PostgreSQL's own programs, no shell
            command, capture_output=True, text=True, check=False, timeout=120
        )

    def _must(self, step: str, done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-1000:]
            log = self.log.read_text(errors="replace")[-1000:] if self.log.exists() else ""
            raise LocalStackError(f"--postgres: {step} failed: {said}\n{log}".rstrip())

    def start(self) -> None:
        data = str(self.root / "data")
        self._must(
            "initdb",
            self._run("initdb", "-D", data, "-U", USER, "--auth=trust", "--encoding=UTF8"),
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        started = self._run(
            "pg_ctl", "-D", data, "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"
        )
        self._must("pg_ctl start", started)
        created = self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE
        )
        self._must("createdb", created)

    def stop(self) -> None:
        """A fast shutdown (open sessions are ended), then the folder goes."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> LocalPostgres:
    """Start a cluster (see the module); ``LocalStackError`` saying why it cannot."""
    bindir, run_as = find_programs(), _run_as()
    root = Path(tempfile.mkdtemp(prefix="syncd-local-pg-"))
    if run_as:
        shutil.chown(root, user=run_as, group=run_as)
    server = LocalPostgres(bindir=bindir, root=root, port=free_port(), run_as=run_as)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
