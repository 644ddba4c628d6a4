"""``syncd sandbox`` / ``python -m syncd.sandbox`` as a user starts it."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from syncd.sandbox.testing import SandboxError, SandboxProcess, SandboxToken

LIST = "/inventory_device_serial/"
LISTENING = "syncd sandbox listening on http://127.0.0.1:"


class Cli:
    """A sandbox started from the command line, its stdout read line by line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout: float = 60.0) -> str | None:
        return self.lines.get(timeout=timeout)

    def stop(self) -> tuple[list[str], str]:
        """Terminate; returns the stdout lines not read yet and all of stderr."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._thread.join(10)
        rest: list[str] = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        return rest, err


@contextmanager
def cli(*args: str) -> Iterator[Cli]:
    command = [sys.executable, "-m", "syncd.sandbox", "--port", "0", *args]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    handle = Cli(proc)
    try:
        yield handle
    finally:
        if proc.poll() is None:
            handle.stop()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def base_url_of(line: str | None) -> str:
    assert line is not None
    assert line.startswith(LISTENING), line
    assert line.endswith("/api/v1")
    return line.removeprefix("syncd sandbox listening on ")


def test_generated_token_is_printed_and_works() -> None:
    with cli() as sandbox:
        base = base_url_of(sandbox.line())
        token_line = sandbox.line()
        assert token_line is not None
        assert token_line.startswith("token: ")
        token = token_line.removeprefix("token: ")
        assert len(token) >= 24
        ok = httpx.get(f"{base}{LIST}", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert httpx.get(f"{base}{LIST}").status_code == 401
        # no --control: the control API is not there
        root = base.removesuffix("/api/v1")
        assert httpx.post(f"{root}/_sandbox/reset").status_code == 404
        rest, err = sandbox.stop()
        assert rest == []
        assert token not in err


def test_given_tokens_are_never_echoed(tmp_path: Path) -> None:
    secret = SandboxToken.generate().value.get_secret_value()
    log_file = tmp_path / "requests.jsonl"
    with cli(
        "--token", secret, "--token", f"{secret}-scoped=123", "--request-log", str(log_file)
    ) as sb:
        base = base_url_of(sb.line())
        r = httpx.get(f"{base}{LIST}", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200
        scoped = {"Authorization": f"Bearer {secret}-scoped"}
        assert httpx.get(f"{base}{LIST}?organization=1", headers=scoped).status_code == 403
        httpx.get(f"{base}{LIST}", headers={"Authorization": "Bearer nope"})
        rest, err = sb.stop()
    assert rest == []
    assert secret not in err
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["status"] for e in entries] == [200, 403, 401]
    assert entries[1]["query"] == "organization=1"
    assert set(entries[0]) == {
        "method",
        "path",
        "query",
        "status",
        "start",
        "duration_ms",
        "fault",
        "serial",
    }
    assert secret not in log_file.read_text()


def test_tokens_from_a_secret_file(tmp_path: Path) -> None:
    secret = SandboxToken.generate().value.get_secret_value()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# the sandbox's tokens\n{secret}\n\n{secret}-scoped=123\n")
    with cli("--token-file", str(tokens)) as sb:
        base = base_url_of(sb.line())
        ok = httpx.get(f"{base}{LIST}", headers={"Authorization": f"Bearer {secret}"})
        scoped = {"Authorization": f"Bearer {secret}-scoped"}
        refused = httpx.get(f"{base}{LIST}?organization=1", headers=scoped)
        rest, err = sb.stop()
    assert (ok.status_code, refused.status_code) == (200, 403)
    assert not any(line.startswith("token:") for line in rest)
    assert secret not in err


@pytest.mark.parametrize("spec", ["has space", ""])
def test_bad_token_spec_is_a_usage_error(spec: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncd.sandbox", "--port", "0", "--token", spec],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--token" in result.stderr
    if spec:
        assert spec not in result.stderr


def test_seed_devices_are_deterministic() -> None:
    args = ["--seed-devices", "250", "--control"]
    with SandboxProcess(args=args) as one, SandboxProcess(args=args) as two:
        with one.client() as a, two.client() as b:
            page_a = a.get(LIST, params={"limit": 100, "offset": 100}).json()
            page_b = b.get(LIST, params={"limit": 100, "offset": 100}).json()
            assert page_a["count"] == 250
            assert page_a["results"] == page_b["results"]
            assert page_a["results"][0]["serial_number"] == "SBX-0000100"
            assert a.post(
                LIST, json={"serial_number": "X", "name": "x", "type": 1, "organization": 1}
            )
        one.reset()
        with one.client() as a:
            assert a.get(LIST).json()["count"] == 250
            assert a.get(f"{LIST}X/").status_code == 404


def test_load_and_catalogue_files(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(
        json.dumps(
            {
                "types": [{"id": 10, "name": "Sensor", "model": "S-1", "manufacturer": "ACME"}],
                "organizations": [{"id": 5, "name": "Lab", "code": "LAB"}],
            }
        )
    )
    devices = tmp_path / "devices.json"
    devices.write_text(
        json.dumps([{"serial_number": "F1", "name": "f", "type": 10, "organization": 5}])
    )
    args = ["--catalogue", str(catalogue), "--load", str(devices)]
    with SandboxProcess(args=args) as sbx, sbx.client() as api:
        detail = api.get(f"{LIST}F1/").json()
        assert detail["type"] == {
            "id": 10,
            "name": "Sensor",
            "model": "S-1",
            "manufacturer": "ACME",
        }
        assert detail["organization"] == {"id": 5, "name": "Lab", "code": "LAB"}
        bad = api.post(
            LIST, json={"serial_number": "F2", "name": "f", "type": 1, "organization": 5}
        )
        assert bad.json() == {"type": ['Invalid pk "1" - object does not exist.']}


def test_bad_load_file_is_a_usage_error(tmp_path: Path) -> None:
    devices = tmp_path / "devices.json"
    devices.write_text(json.dumps([{"serial_number": "F1", "name": "f", "type": 99}]))
    result = subprocess.run(
        [sys.executable, "-m", "syncd.sandbox", "--port", "0", "--load", str(devices)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--load" in result.stderr


def test_fault_options_at_start() -> None:
    args = ["--fail-rate", "1", "--fail-status", "502", "--retry-after", "3"]
    with SandboxProcess(args=args) as sbx, sbx.client() as api:
        r = api.get(LIST)
        assert r.status_code == 502
        assert r.headers["retry-after"] == "3"
        sbx.set_faults(fail_rate=0.0)
        assert api.get(LIST).status_code == 200
        sbx.reset()  # back to the start: failing again
        assert api.get(LIST).status_code == 502


def test_rate_limit_option() -> None:
    with SandboxProcess(args=["--rate-limit", "2/hour"]) as sbx, sbx.client() as api:
        assert [api.get(LIST).status_code for _ in range(3)] == [200, 200, 429]


def test_syncd_sandbox_is_registered_in_the_main_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--token", "--control", "--seed-devices", "--drop-rate", "--request-log"):
        assert option in result.stdout


def test_a_sandbox_that_cannot_start_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-catalogue.json"
    with pytest.raises(SandboxError) as caught:
        SandboxProcess(args=["--catalogue", str(missing)]).start()
    assert "--catalogue" in str(caught.value)


def test_handles_do_not_show_tokens(sandbox: SandboxProcess) -> None:
    shown = f"{sandbox!r} {sandbox.tokens!r} {sandbox.token!r} {sandbox.tokens[1]}"
    for token in sandbox.tokens:
        assert token.value.get_secret_value() not in shown
    assert sandbox.running
    assert sandbox.base_url == f"http://127.0.0.1:{sandbox.port}/api/v1"
