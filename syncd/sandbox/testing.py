"""``SandboxProcess``: the sandbox as a real subprocess, for tests and benchmarks.

::

    with SandboxProcess(tokens=[SandboxToken.generate(), SandboxToken.generate({123})]) as sbx:
        sbx.load([{"serial_number": "SN1", "name": "r1", "type": 1, "organization": 123}])
        with sbx.client() as http:                       # base_url + Authorization set
            assert http.get("/inventory_device_serial/SN1/").status_code == 200
        sbx.set_faults(script=["503", "ok"])
        assert sbx.stats().total == 1

The child runs ``python -m syncd.sandbox --host 127.0.0.1 --port 0 --control`` plus
``args``; tokens reach it through ``$SYNCD_SANDBOX_TOKENS``, not its command line,
so they never show in a process list. Control calls go to ``/_sandbox/`` and raise
``SandboxError`` on any unexpected answer; with ``control_token`` the control API
requires that token (through ``$SYNCD_SANDBOX_CONTROL_TOKEN``) and the control calls
send it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr

LISTENING_PREFIX = "syncd sandbox listening on "
TOKENS_ENV = "SYNCD_SANDBOX_TOKENS"
CONTROL_TOKEN_ENV = "SYNCD_SANDBOX_CONTROL_TOKEN"  # noqa: S105 - a variable name


class SandboxError(RuntimeError):
    """The sandbox did not start, died, or refused a control call."""


@dataclass(frozen=True, slots=True)
class SandboxToken:
    """A bearer token the sandbox accepts; ``organizations`` scopes it (``None``: all)."""

    value: SecretStr
    organizations: frozenset[int] | None = field(default=None)

    @classmethod
    def generate(cls, organizations: Iterable[int] | None = None) -> SandboxToken:
        """A fresh random token, optionally scoped to ``organizations``."""
        orgs = frozenset(organizations) if organizations is not None else None
        return cls(SecretStr(secrets.token_urlsafe(24)), orgs)

    def spec(self) -> str:
        """``TOKEN`` or ``TOKEN=ORG,ORG`` as the sandbox's ``--token`` takes it (a secret)."""
        token = self.value.get_secret_value()
        if self.organizations is None:
            return token
        return f"{token}={','.join(str(o) for o in sorted(self.organizations))}"

    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}``."""
        return {"Authorization": f"Bearer {self.value.get_secret_value()}"}


class RequestRecord(BaseModel):
    """One entry of the sandbox's request log."""

    method: str
    path: str
    query: str
    status: int
    start: float
    duration_ms: float
    fault: str | None = None
    serial: str | None = None


class SandboxStats(BaseModel):
    """``GET /_sandbox/stats``: counts since the last reset or log clear."""

    total: int
    by_method: dict[str, int]
    by_status: dict[str, int]
    writes: int
    applied_writes: int
    peak_per_second: int
    faults: dict[str, int]


class FaultUpdate(TypedDict, total=False):
    """Keys of ``PUT /_sandbox/faults`` (see ``docs/sandbox.md``)."""

    fail_rate: float
    fail_status: int
    retry_after: int | None
    latency_ms: float
    latency_rate: float
    drop_rate: float
    drop_applied: bool
    rate_limit: str | None
    script: list[str]
    hide_from_list: list[str]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _stop_process(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class SandboxProcess:
    """A sandbox subprocess with the control API on; a context manager."""

    def __init__(
        self,
        *,
        tokens: Sequence[SandboxToken] | None = None,
        args: Sequence[str] = (),
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        control_token: SecretStr | None = None,
    ) -> None:
        self.tokens: tuple[SandboxToken, ...] = tuple(tokens or (SandboxToken.generate(),))
        self.control_token = control_token
        self.args = tuple(args)
        self.host = host
        self.startup_timeout = startup_timeout
        self._env = dict(env or {})
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: deque[str] = deque(maxlen=500)
        self._listening = threading.Event()
        self._root_url: str | None = None
        self._control: httpx.Client | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"SandboxProcess(root_url={self._root_url!r}, running={self.running})"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process and wait for its listening line."""
        if self._proc is not None:
            raise SandboxError("already started")
        env = {**os.environ, **self._env, "PYTHONUNBUFFERED": "1"}
        env[TOKENS_ENV] = " ".join(t.spec() for t in self.tokens)
        # the control token is ours to give, never one left in the environment
        env.pop(CONTROL_TOKEN_ENV, None)
        control_headers: dict[str, str] = {}
        if self.control_token is not None:
            secret = self.control_token.get_secret_value()
            env[CONTROL_TOKEN_ENV] = secret
            control_headers["Authorization"] = f"Bearer {secret}"
        command = [
            sys.executable,
            "-m",
            "syncd.sandbox",
            "--host",
            self.host,
            "--port",
            "0",
            "--control",
            *self.args,
        ]
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        )
        self._finalizer = weakref.finalize(self, _stop_process, self._proc, 5.0)
        self._reader = threading.Thread(target=self._read_output, name="sandbox-output")
        self._reader.daemon = True
        self._reader.start()
        if not self._listening.wait(self.startup_timeout) or self._root_url is None:
            self.stop()
            raise SandboxError(f"the sandbox did not start; its output:\n{self.output()}")
        self._control = httpx.Client(
            base_url=f"{self._root_url}/_sandbox", headers=control_headers, timeout=120.0
        )
        return self

    def _read_output(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.rstrip("\n")
            self._output.append(text)
            if not self._listening.is_set() and text.startswith(LISTENING_PREFIX):
                self._root_url = text[len(LISTENING_PREFIX) :].removesuffix("/api/v1")
                self._listening.set()
        # the process is gone: wake a start() that is still waiting
        self._listening.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate (then kill if it lingers) and release the pipes; idempotent."""
        if self._control is not None:
            self._control.close()
            self._control = None
        proc = self._proc
        if proc is None:
            return
        _stop_process(proc, timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._finalizer is not None:
            self._finalizer.detach()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> str:
        """The last lines the process printed (stdout and stderr)."""
        return "\n".join(self._output)

    # -- addresses and credentials -------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._root_url is None:
            raise SandboxError("not started")
        return self._root_url

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``: the inventory API's base URL."""
        return f"{self.root_url}/api/v1"

    @property
    def port(self) -> int:
        """The port the sandbox listens on."""
        return int(self.root_url.rsplit(":", 1)[1])

    @property
    def token(self) -> SecretStr:
        """The first token (unscoped unless you gave a scoped one first)."""
        return self.tokens[0].value

    def auth_headers(self, token: SandboxToken | None = None) -> dict[str, str]:
        """The ``Authorization`` header for ``token`` (default: the first)."""
        return (token or self.tokens[0]).headers()

    def client(self, token: SandboxToken | None = None, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on ``base_url`` that sends ``token`` (default: the first)."""
        headers = {**self.auth_headers(token), **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)

    # -- control API ---------------------------------------------------------------------

    def _call(self, method: str, path: str, body: object = None) -> Any:
        if self._control is None:
            raise SandboxError("not started")
        response = self._control.request(method, path, json=body)
        if response.status_code >= 300:
            raise SandboxError(
                f"{method} /_sandbox/{path} -> {response.status_code}: {response.text[:2000]}"
            )
        return response.json() if response.content else None

    def reset(self) -> None:
        """Devices, request log, faults and random seed back to the start state."""
        self._call("POST", "reset")

    def load(self, devices: Iterable[Mapping[str, Any]]) -> int:
        """Bulk-load (insert or replace) devices in load form; returns the store size."""
        answer = self._call("POST", "devices", list(devices))
        return int(answer["devices"])

    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first (control calls are never in it)."""
        return [RequestRecord.model_validate(e) for e in self._call("GET", "requests")]

    def clear_requests(self) -> None:
        """Empty the request log and zero the statistics."""
        self._call("DELETE", "requests")

    def stats(self) -> SandboxStats:
        """Request statistics since the last reset or clear."""
        return SandboxStats.model_validate(self._call("GET", "stats"))

    def faults(self) -> dict[str, Any]:
        """The current fault settings."""
        result: dict[str, Any] = self._call("GET", "faults")
        return result

    def set_faults(self, **settings: Unpack[FaultUpdate]) -> dict[str, Any]:
        """Change the given fault settings (others stay); returns them all."""
        result: dict[str, Any] = self._call("PUT", "faults", dict(settings))
        return result

    def device_state(self, serial: str) -> dict[str, Any]:
        """``{"serial_number", "status", "live_status", "pending"}`` of one device."""
        result: dict[str, Any] = self._call("GET", f"devices/{_quote(serial)}/state")
        return result

    def set_state(
        self,
        serial: str,
        *,
        live_status: bool | None = UNSET,
        pending: Mapping[str, Any] | None = UNSET,
    ) -> dict[str, Any]:
        """Set what a live check finds (``None``: nothing) and/or the pending state."""
        body: dict[str, Any] = {}
        if live_status is not UNSET:
            body["live_status"] = live_status
        if pending is not UNSET:
            body["pending"] = dict(pending) if pending is not None else None
        result: dict[str, Any] = self._call("PUT", f"devices/{_quote(serial)}/state", body)
        return result


def _quote(serial: str) -> str:
    return quote(serial, safe="")
