"""Start and stop the local topology (see the package): the same services as
``compose.yaml``, each a process on 127.0.0.1.

Order of start: sandbox, store, Redis (scale-out), the config file, the schema and an
operator token, the daemon (or workers and beat), the HTTP app. Stop is the reverse,
tier by tier, each with SIGTERM: the API stops taking requests, the daemon finishes
what it holds, then what they depended on goes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from syncd.cli.demo import demo_config, set_keys
from syncd.topology import LocalStackError
from syncd.topology.postgres import LocalPostgres, start_postgres
from syncd.topology.procs import Process, free_port, start, syncd_command

#: A working folder with this file was made by the script, and may be wiped by it.
MARKER = ".syncd-local"
SANDBOX_LISTENING = "syncd sandbox listening on "
API_LISTENING = "syncd api listening on "
#: The name of the operator token the script makes for itself (``syncd tokens list``).
OPERATOR = "local-operator"
#: Seconds a daemon or worker has to finish what it holds after SIGTERM (compose: 60 s).
DAEMON_GRACE = 60.0


@dataclass(frozen=True)
class Options:
    """What to start: ``postgres`` instead of SQLite, ``scale_out`` (Redis, ``workers``
    workers and beat) instead of the embedded daemon."""

    workdir: Path
    postgres: bool = False
    scale_out: bool = False
    workers: int = 2


@dataclass
class Stack:
    """The running topology: where each part is, and the processes to stop."""

    options: Options
    tiers: list[list[Process]] = field(default_factory=list)
    postgres: LocalPostgres | None = None
    sandbox_url: str = ""
    api_url: str = ""
    store_url: str = ""
    broker_url: str = ""

    @property
    def workdir(self) -> Path:
        return self.options.workdir

    @property
    def config(self) -> Path:
        return self.workdir / "syncd.toml"

    @property
    def inbox(self) -> Path:
        return self.workdir / "inbox"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def secret(self, name: str) -> Path:
        """Where the secret ``name`` is kept (``inventory_token``, ``operator_token``...)."""
        return self.workdir / "secrets" / name

    def processes(self) -> list[Process]:
        return [proc for tier in self.tiers for proc in tier]

    def dead(self) -> Process | None:
        """The first process that exited while it should be running, if any."""
        return next((proc for proc in self.processes() if not proc.running), None)

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything (``stop`` undoes whatever part of it was done)."""
        self._prepare()
        self._start_sandbox()
        self._start_store()
        if self.options.scale_out:
            self._start_redis()
        self._write_config()
        self._issue_operator_token()
        self._start_daemon()
        self._start_api()

    def _prepare(self) -> None:
        workdir = self.workdir
        if workdir.exists() and any(workdir.iterdir()):
            if not (workdir / MARKER).exists():
                raise LocalStackError(
                    f"{workdir} exists and was not made by this script: name another --workdir"
                )
            shutil.rmtree(workdir)
        for folder in (workdir, self.inbox, self.logs, workdir / "secrets"):
            folder.mkdir(parents=True, exist_ok=True)
        (workdir / MARKER).touch()
        _write_secret(self.secret("inventory_token"), secrets.token_urlsafe(32))
        _write_secret(self.secret("token_pepper"), secrets.token_hex(32))

    def _start_sandbox(self) -> None:
        command = syncd_command(
            "sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--token-file",
            str(self.secret("inventory_token")),
            "--request-log",
            str(self.logs / "sandbox-requests.jsonl"),
        )
        proc = start("sandbox", command, log=self.logs / "sandbox.log", grace=10)
        self.tiers.insert(0, [proc])
        line = proc.wait_for_line(SANDBOX_LISTENING)
        self.sandbox_url = line.split(SANDBOX_LISTENING, 1)[1].strip()

    def _start_store(self) -> None:
        if not self.options.postgres:
            self.store_url = f"sqlite:///{self.workdir / 'syncd.db'}"
            return
        self.postgres = start_postgres()
        self.store_url = self.postgres.url

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise LocalStackError("--scale-out needs redis-server (the redis-server package)")
        port, folder = free_port(), self.workdir / "redis"
        folder.mkdir()
        command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        proc = start("redis", command, log=self.logs / "redis.log", grace=10)
        self.tiers.insert(0, [proc])
        proc.wait_for_line("Ready to accept connections")
        self.broker_url = f"redis://127.0.0.1:{port}/0"

    def _write_config(self) -> None:
        text = set_keys(
            demo_config(self.sandbox_url, self.workdir),
            (
                ("[store]", "url", json.dumps(self.store_url)),
                ("[daemon]", "broker_url", json.dumps(self.broker_url)),
                ("[api]", "port", str(free_port())),
            ),
        )
        text = _add_key(text, "[inventory]", "token_file", self.secret("inventory_token"))
        text = _add_key(text, "[api]", "token_pepper_file", self.secret("token_pepper"))
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
        header = f"# The config of the local topology in {self.workdir}, written {stamp}.\n"
        self.config.write_text(header + text, encoding="utf-8")

    def _issue_operator_token(self) -> None:
        """Create the schema (before any process would race to) and an operator token,
        kept in a secret file: the check's, or a person's with ``curl``."""
        from syncd.config import load_settings
        from syncd.service.access import issue, require_pepper
        from syncd.store import Store

        settings = load_settings(self.config)
        pepper = require_pepper(settings.api.resolved_token_pepper())
        with Store.from_settings(settings.store) as store:
            _, token = issue(store, OPERATOR, "operator", pepper)
        _write_secret(self.secret("operator_token"), token.get_secret_value())

    def _start_daemon(self) -> None:
        config = str(self.config)
        if not self.options.scale_out:
            proc = self._syncd("daemon", "daemon", "--config", config, grace=DAEMON_GRACE)
            self.tiers.insert(0, [proc])
            proc.wait_for_line(" ready.")
            return
        workers = [
            self._syncd(f"worker-{n}", "worker", "--config", config, grace=DAEMON_GRACE)
            for n in range(1, self.options.workers + 1)
        ]
        beat = self._syncd("beat", "beat", "--config", config, grace=DAEMON_GRACE)
        self.tiers.insert(0, [*workers, beat])
        for worker in workers:
            worker.wait_for_line(" ready.")
        beat.wait_for_line("beat: Starting")

    def _start_api(self) -> None:
        proc = self._syncd("api", "serve", "--config", str(self.config), grace=15)
        self.tiers.insert(0, [proc])
        line = proc.wait_for_line(API_LISTENING)
        self.api_url = line.split(API_LISTENING, 1)[1].strip()

    def _syncd(self, name: str, *args: str, grace: float) -> Process:
        return start(name, syncd_command(*args), log=self.logs / f"{name}.log", grace=grace)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop everything, newest tier first (SIGTERM, each tier at once); what did not
        stop cleanly, one line each."""
        problems: list[str] = []
        for tier in self.tiers:
            for proc in tier:
                proc.terminate()
            for proc in tier:
                problem = proc.wait_stopped()
                if problem is not None:
                    problems.append(problem)
        self.tiers.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        return problems


def _write_secret(path: Path, value: str) -> None:
    """``value`` in ``path``, readable by this user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")


def _add_key(text: str, section: str, key: str, value: Path) -> str:
    """``key = "value"`` added as the first line of ``section``."""
    header = f"\n{section}\n"
    if header not in text:
        raise RuntimeError(f"the example config has no {section}")
    return text.replace(header, f"{header}{key} = {json.dumps(str(value))}\n", 1)
