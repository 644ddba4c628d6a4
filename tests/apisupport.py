"""``syncd serve`` as a real process on loopback, for the API's tests.

::

    with ApiProcess(config_file, env={"SYNCD_API__TRIGGER_TOKEN": token}) as api:
        with api.client() as http:
            http.post("/v1/triggers", json={"connector": "procurement"}, headers=...)
        api.output()          # everything it wrote on stdout and stderr so far

Secrets reach it through the environment, as in production; ``sign`` computes the
``X-Hook-Signature`` NetBox would send, independently of ``syncd.api``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from syncd.service.access import issue
from syncd.store import Store
from tests.runsupport import RunEnv, toml_text

LISTENING = "syncd api listening on "
FIXTURES = Path(__file__).parent / "fixtures" / "netbox"
#: The request body limit the tests configure.
LIMIT = 16 * 1024


class ApiProcess:
    """``python -m syncd serve --config FILE --port 0`` with ``env`` added; a context manager."""

    def __init__(
        self, config: Path, *, env: Mapping[str, str], startup_timeout: float = 60
    ) -> None:
        self.config = config
        self.env = dict(env)
        self.startup_timeout = startup_timeout
        self.url = ""
        self._lines: list[str] = []
        self._listening = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> Self:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "syncd", "serve", "--config", str(self.config)]
        self._proc = subprocess.Popen(
            [*command, "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.config.parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(self.startup_timeout) or not self.url:
            self.stop()
            raise RuntimeError(f"syncd serve did not start:\n{self.output()}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            text = line.rstrip("\n")
            self._lines.append(text)
            if text.startswith(LISTENING):
                self.url = text[len(LISTENING) :]
                self._listening.set()
        self._listening.set()  # it ended: stop waiting for it

    def client(self) -> httpx.Client:
        """An httpx client on the API's root URL."""
        return httpx.Client(base_url=self.url, timeout=30)

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return "\n".join(self._lines)

    def stop(self) -> str:
        """SIGTERM (SIGKILL if it hangs); returns its whole output."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
        if self._reader is not None:
            self._reader.join(15)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        return self.output()

    @property
    def returncode(self) -> int | None:
        """The exit status once stopped."""
        return None if self._proc is None else self._proc.poll()


def sign(body: bytes, secret: str) -> str:
    """NetBox's ``X-Hook-Signature``: hex HMAC-SHA512 of the body, the secret as key."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha512).hexdigest()


def recorded_webhook() -> dict[str, Any]:
    """The body of the webhook a real NetBox 4.6.8 sent for an updated device."""
    recorded = json.loads((FIXTURES / "webhook_payload_device_updated.json").read_text())
    body: dict[str, Any] = recorded["body"]
    return body


def with_serial(body: dict[str, Any], serial: str, *, before: str | None = None) -> dict[str, Any]:
    """``body`` for a device whose serial is ``serial`` (``before``: its serial before
    the change, if it was edited)."""
    changed: dict[str, Any] = json.loads(json.dumps(body))
    changed["data"]["serial"] = serial
    changed["snapshots"]["postchange"]["serial"] = serial
    changed["snapshots"]["prechange"]["serial"] = serial if before is None else before
    return changed


def queued_requests(store: Store) -> list[dict[str, Any]]:
    """Every trigger request row, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM trigger_request ORDER BY id")).mappings()
        return [dict(row) for row in rows]


def clear_requests(store: Store) -> None:
    """Forget every trigger request (each test starts from none)."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM trigger_request"))


def messages(queue: Path) -> list[dict[str, Any]]:
    """The task messages the embedded broker holds: ``{"task", "args", "kwargs"}`` each.
    A file still being written (kombu writes in place) is not counted yet."""
    found = []
    for path in sorted(queue.glob("*.msg")) if queue.is_dir() else []:
        try:
            message = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append({"task": message["headers"]["task"], "args": args, "kwargs": kwargs})
    return found


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    """Poll ``check()`` until it returns something truthy (the broker is nudged after the
    answer has gone out, by the server's own thread); its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    return value


def write_config(root: Path, *connectors: str, daemon: str = "") -> Path:
    """A config with a store, a broker folder (and ``daemon``, more of that section) and
    ``connectors`` (TOML tables)."""
    (root / "inbox").mkdir(exist_ok=True)
    config = root / "syncd.toml"
    body = "\n".join(connectors)
    config.write_text(
        f'[store]\nurl = "sqlite:///{root / "syncd.db"}"\n'
        f'[daemon]\ndata_dir = "{root / "daemon"}"\n{daemon}\n'
        f"[api]\nmax_body_bytes = {LIMIT}\n{body}\n",
        encoding="utf-8",
    )
    return config


PROCUREMENT = '[[connectors]]\nname = "procurement"\nplugin = "csv_drop"\n' + (
    '[connectors.options]\ninbox = "inbox"\n'
)


def netbox(name: str, *, enabled: bool = True) -> str:
    """A NetBox connector table (never contacted: the API only queues requests)."""
    return (
        f'[[connectors]]\nname = "{name}"\nplugin = "netbox"\nenabled = {str(enabled).lower()}\n'
        '[connectors.options]\nurl = "http://127.0.0.1:9"\n'
    )


@contextmanager
def serve_store(
    env: RunEnv, root: Path, pepper: str
) -> Iterator[tuple[ApiProcess, SecretStr, SecretStr]]:
    """``syncd serve`` over ``env``'s store, with a viewer token (``grafana``) and an
    operator token (``alice``) issued under ``pepper``."""
    config = env.config()
    config["daemon"] = {"data_dir": str(root / "daemon")}
    config["api"] = {"max_body_bytes": LIMIT}
    path = root / "syncd.toml"
    path.write_text(toml_text(config), encoding="utf-8")
    with Store.open(env.store_url) as store:
        _, viewer = issue(store, "grafana", "viewer", SecretStr(pepper))
        _, operator = issue(store, "alice", "operator", SecretStr(pepper))
    environment = {
        "SYNCD_API__TOKEN_PEPPER": pepper,
        "SYNCD_INVENTORY__TOKEN": env.sandbox.token.get_secret_value(),
    }
    with ApiProcess(path, env=environment) as api:
        yield api, viewer, operator
