"""Shared fixtures. One section per subsystem; keep each fixture documented."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from syncd.sandbox.testing import SandboxProcess, SandboxToken
from tests import profiles  # noqa: F401 - registers and loads the hypothesis profiles

# Real processes (redis-server, syncd daemon/worker/beat): fixtures of tests/procs.py.
from tests.procs import processes, redis_server  # noqa: F401 - pytest fixtures

# -- sandbox (the inventory API on loopback) ---------------------------------------------------

#: The organization the scoped sandbox token may act on.
SCOPED_ORG = 123


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[SandboxProcess]:
    """One sandbox process for the session, with two tokens:
    ``tokens[0]`` unscoped, ``tokens[1]`` scoped to organization ``SCOPED_ORG``.
    A short live-check delay keeps ``update_status`` tests fast."""
    tokens = [SandboxToken.generate(), SandboxToken.generate({SCOPED_ORG})]
    with SandboxProcess(tokens=tokens, args=["--live-check-delay", "0.05"]) as process:
        yield process


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """The session's sandbox, reset (no devices, empty log, no faults) for this test."""
    sandbox_process.reset()
    return sandbox_process


@pytest.fixture
def sandbox_api(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    """An httpx client on the reset sandbox's ``/api/v1`` with the unscoped token."""
    with sandbox.client(token=sandbox.tokens[0]) as client:
        yield client


@pytest.fixture
def sandbox_scoped_api(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    """An httpx client on the reset sandbox with the token scoped to ``SCOPED_ORG``."""
    with sandbox.client(token=sandbox.tokens[1]) as client:
        yield client


# -- logging -----------------------------------------------------------------------------------


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """For tests that run ``syncd.log.configure`` (or a command) in-process: it replaces
    the root logger's handlers, some libraries' levels and structlog's configuration,
    which are put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "alembic")}
    previous = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)
        logging.captureWarnings(False)
        structlog.configure(**previous)
