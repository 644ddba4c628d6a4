"""``--control`` beyond loopback: a warning at start, and a control API that needs its token.

The tests never bind a non-loopback address (this machine's servers stay on
127.0.0.1): what a start on ``0.0.0.0`` would serve and say is planned by
``plan_startup`` from the address alone, and that plan's ASGI app is driven
directly. On loopback, the same control token is exercised over real HTTP.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from syncd.sandbox.app import SandboxApp
from syncd.sandbox.launch import LaunchSettings, build_options, is_loopback, plan_startup
from syncd.sandbox.testing import SandboxProcess, SandboxToken

API_TOKEN = "api-token-for-exposure-tests"
SANDBOX = [sys.executable, "-m", "syncd.sandbox", "--port", "0", "--control"]


def call(app: SandboxApp, method: str, path: str, token: str | None = None) -> httpx.Response:
    """One request to ``app`` through its ASGI interface."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, path, headers=headers)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("fe80::1%eth0", False),
    ],
)
def test_loopback_addresses(address: str, *, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_control_beyond_loopback_warns_and_requires_a_generated_token() -> None:
    options, generated = build_options(LaunchSettings(tokens=(API_TOKEN,), control=True))
    startup = plan_startup(options, generated, "0.0.0.0")
    assert len(startup.warnings) == 2
    assert "bound to 0.0.0.0, not a loopback address" in startup.warnings[0]
    assert "control API" in startup.warnings[1]
    assert "requires the control token" in startup.warnings[1]
    (line,) = startup.lines  # the API token was given: only the control token is printed
    assert line.startswith("control token: ")
    control_token = line.removeprefix("control token: ")
    assert len(control_token) >= 24
    assert control_token not in "".join(startup.warnings)

    app = SandboxApp(startup.options)
    refused = call(app, "POST", "/_sandbox/reset")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Authentication credentials were not provided."}
    assert refused.headers["www-authenticate"] == 'Bearer realm="sandbox-control"'
    assert call(app, "PUT", "/_sandbox/faults", token=API_TOKEN).status_code == 401
    assert call(app, "GET", "/_sandbox/health", token=control_token).json()["ok"] is True
    # the control token is not an API token
    assert call(app, "GET", "/api/v1/", token=control_token).status_code == 401
    assert call(app, "GET", "/api/v1/", token=API_TOKEN).status_code == 200


def test_a_given_control_token_is_used_and_not_printed() -> None:
    settings = LaunchSettings(tokens=(API_TOKEN,), control=True, control_token="ctl-given")
    startup = plan_startup(*build_options(settings), "0.0.0.0")
    assert startup.lines == ()
    assert len(startup.warnings) == 2
    app = SandboxApp(startup.options)
    assert call(app, "POST", "/_sandbox/reset").status_code == 401
    assert call(app, "POST", "/_sandbox/reset", token="ctl-given").status_code == 200


def test_beyond_loopback_without_control_only_warns() -> None:
    startup = plan_startup(*build_options(LaunchSettings(tokens=(API_TOKEN,))), "::")
    assert len(startup.warnings) == 1
    assert "bound to ::, not a loopback address" in startup.warnings[0]
    assert startup.lines == ()
    assert call(SandboxApp(startup.options), "GET", "/_sandbox/health").status_code == 404


def test_loopback_stays_as_it_was() -> None:
    options, generated = build_options(LaunchSettings(control=True))
    startup = plan_startup(options, generated, "127.0.0.1")
    assert startup.warnings == ()
    assert startup.lines == (f"token: {generated}",)
    assert call(SandboxApp(startup.options), "POST", "/_sandbox/reset").status_code == 200


def test_a_control_token_on_loopback_is_required_over_http() -> None:
    control_token = SandboxToken.generate().value
    with SandboxProcess(control_token=control_token) as sbx:
        control = f"{sbx.root_url}/_sandbox"
        refused = httpx.post(f"{control}/reset")
        assert refused.status_code == 401
        assert refused.json() == {"detail": "Authentication credentials were not provided."}
        wrong = httpx.get(f"{control}/stats", headers=sbx.auth_headers())  # an API token
        assert wrong.json() == {"detail": "Invalid token."}
        # SandboxProcess sends the control token with its own control calls
        assert sbx.load([{"serial_number": "C1", "name": "c", "type": 1, "organization": 1}]) == 1
        sbx.reset()
        assert control_token.get_secret_value() not in sbx.output()


def test_control_token_file_and_bad_control_tokens(tmp_path: Path) -> None:
    secret = SandboxToken.generate().value.get_secret_value()
    token_file = tmp_path / "control-token"
    token_file.write_text(f"# the sandbox's control token\n{secret}\n")
    proc = subprocess.Popen(
        [*SANDBOX, "--control-token-file", str(token_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        listening = proc.stdout.readline()
        assert listening.startswith("syncd sandbox listening on http://127.0.0.1:")
        root = listening.strip().removeprefix("syncd sandbox listening on ").removesuffix("/api/v1")
        assert httpx.get(f"{root}/_sandbox/health").status_code == 401
        ok = httpx.get(f"{root}/_sandbox/health", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert secret not in out + err
    assert "WARNING" not in err  # loopback: nothing to warn about
    assert "control token:" not in out  # given, so not printed

    bad = subprocess.run(
        [*SANDBOX, "--control-token", "has space"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--control-token" in bad.stderr
    assert "has space" not in bad.stderr
