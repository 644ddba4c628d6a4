"""The token never leaves the process except in the Authorization header: not in log
lines (structlog, stdlib, httpx's own debug logs), not in stdout/stderr, not in
exception messages, reprs or rendered tracebacks, for failing and succeeding calls."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from syncd.config import RetrySettings
from syncd.errors import ConfigError, SyncdError
from syncd.inventory import DeviceCreate, DevicePatch, InventoryClient
from syncd.ratelimit import LimitsRateLimiter
from syncd.sandbox.testing import SandboxProcess
from tests.client_support import FAST_RETRY, device, make_client, wait_for_log


@pytest.fixture
def loud_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """structlog rendering every event (tracebacks included) as JSON to stdout, and the
    stdlib root logger (httpx, httpcore) captured at DEBUG."""
    previous = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=repr),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    caplog.set_level(logging.DEBUG)
    try:
        yield
    finally:
        structlog.configure(**previous)


def _failures(
    sandbox: SandboxProcess, client: InventoryClient, slow: InventoryClient
) -> list[Callable[[], Any]]:
    new = DeviceCreate(serial_number="S2", name="n", type=1, organization=123)
    return [
        lambda: client.get_device("MISSING"),  # 404
        lambda: client.create_device(new.model_copy(update={"type": 999})),  # 400
        lambda: client.create_device(new.model_copy(update={"serial_number": "S1"})),  # 409
        lambda: (sandbox.set_faults(script=["503"] * 9), client.list_devices()),
        lambda: (sandbox.set_faults(script=["429"] * 9, retry_after=0), client.list_devices()),
        lambda: (sandbox.set_faults(script=["drop"] * 9), client.create_device(new)),
        lambda: (sandbox.set_faults(script=["500"]), client.patch_device("S1", DevicePatch())),
        lambda: (sandbox.set_faults(script=["delay:400"]), slow.get_device("S1")),
    ]


def test_token_never_appears_anywhere(
    sandbox: SandboxProcess,
    loud_logging: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets = [t.value.get_secret_value() for t in sandbox.tokens]
    wrong = SecretStr("wrong-token-0d9c2b11")
    secrets.append(wrong.get_secret_value())
    sandbox.load([device("S1", organization=1)])
    texts: list[str] = []
    log = structlog.get_logger("test")
    once = RetrySettings(attempts=1, timeout=5, wait_initial=0, wait_max=0, wait_jitter=0)
    limiter = LimitsRateLimiter(1000, 1000, key="secrets")

    with (
        make_client(sandbox, rate_limiter=limiter) as client,
        make_client(sandbox, retry=once, timeout=0.1) as slow,
        make_client(sandbox, token=wrong) as unknown,
        make_client(sandbox, token=sandbox.tokens[1].value) as scoped,
    ):
        texts += [repr(client), str(client), repr(limiter), repr(unknown)]
        calls = _failures(sandbox, client, slow)
        calls += [unknown.list_devices, lambda: scoped.delete_device("S1")]
        for call in calls:
            with pytest.raises(SyncdError) as info:
                call()
            sandbox.set_faults(script=[], retry_after=None)
            texts += [str(info.value), repr(info.value), repr(getattr(info.value, "body", None))]
            texts += traceback.format_exception(info.value)
            log.exception("call failed", error=info.value, exc_info=info.value)
        # The slow request finishes server-side before the test moves on.
        assert wait_for_log(sandbox, 1, fault="delay")
        assert client.get_device("S1").name == "dev-S1"
        assert len(list(client.iter_devices())) == 1

    with pytest.raises(ConfigError) as bad:
        InventoryClient(sandbox.base_url, SecretStr(f"{secrets[0]}\n"))
    texts += [str(bad.value), *traceback.format_exception(bad.value)]

    closed = _closed_port()
    with (
        InventoryClient(f"http://127.0.0.1:{closed}/api/v1", sandbox.token, retry=once) as dead,
        pytest.raises(SyncdError) as refused,
    ):
        dead.list_devices()
    texts += traceback.format_exception(refused.value)

    out = capsys.readouterr()
    records = [r.getMessage() + repr(r.args) + repr(r.__dict__) for r in caplog.records]
    everything = "\n".join([*texts, out.out, out.err, *records])
    assert "inventory.request" in out.out  # the debug lines were really rendered
    assert any("httpx" in r.name or "httpcore" in r.name for r in caplog.records)
    for secret in secrets:
        assert secret not in everything


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_retry_hook_logs_carry_no_token(
    sandbox: SandboxProcess, loud_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """stamina logs every scheduled retry with its cause; the cause is our message."""
    sandbox.set_faults(script=["503", "drop", "ok"])
    with make_client(sandbox, retry=FAST_RETRY) as client:
        client.list_devices()
    out = capsys.readouterr().out
    assert "stamina.retry_scheduled" in out
    assert sandbox.token.get_secret_value() not in out
