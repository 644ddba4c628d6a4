"""``/healthz`` and ``/readyz`` of a real ``syncd serve`` while what it needs comes and goes:
a PostgreSQL store dropped under it, a Redis broker stopped and started again."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg
from tests.apisupport import PROCUREMENT, ApiProcess

PEPPER = "pepper-for-health-checks-0000"
#: A redis-server that keeps nothing on disk.
QUIET = ("--save", "", "--appendonly", "no")
NOT_READY = {"ok": False, "error": "cannot be used now (the server's log says why)"}


def write_config(root: Path, store_url: str, broker: str = "") -> Path:
    config = root / "syncd.toml"
    (root / "inbox").mkdir(exist_ok=True)
    config.write_text(
        f'[store]\nurl = "{store_url}"\n'
        f'[daemon]\ndata_dir = "{root / "daemon"}"\nbroker_url = "{broker}"\n{PROCUREMENT}',
        encoding="utf-8",
    )
    return config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RedisServer:
    """A throw-away ``redis-server`` on loopback that a test can stop and start again."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), *QUIET],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("SYNCD_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is required (SYNCD_REQUIRE_REDIS=1) but not installed")
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.postgres
def test_readyz_is_503_once_the_store_is_gone_and_healthz_stays_200(tmp_path: Path) -> None:
    server = pg.require_server()
    name = server.create_database()
    config = write_config(tmp_path, server.url(name))

    with (
        ApiProcess(config, env={"SYNCD_API__TOKEN_PEPPER": PEPPER}) as api,
        api.client() as http,
    ):
        ready = http.get("/readyz")
        server.drop_database(name)
        gone = http.get("/readyz")
        alive = http.get("/healthz")
        output = api.stop()

    assert (ready.status_code, ready.json()) == (
        200,
        {"ready": True, "checks": {"store": {"ok": True}}},
    )
    assert gone.status_code == 503
    assert gone.json() == {
        "ready": False,
        "checks": {
            "store": {"ok": False, "error": "cannot be used now (the server's log says why)"}
        },
    }
    assert name not in gone.text, "a public answer names no database"
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert "api.not_ready" in output
    assert name in output, "the log says why"


@pytest.mark.redis
def test_readyz_follows_a_redis_broker(tmp_path: Path, redis_server: RedisServer) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}", redis_server.url)

    with (
        ApiProcess(config, env={"SYNCD_API__TOKEN_PEPPER": PEPPER}) as api,
        api.client() as http,
    ):
        up = http.get("/readyz")
        redis_server.stop()
        down = http.get("/readyz")
        redis_server.start()
        back = http.get("/readyz")

    assert up.status_code == 200
    assert up.json()["checks"] == {"store": {"ok": True}, "broker": {"ok": True}}
    assert down.status_code == 503
    assert down.json()["checks"]["store"] == {"ok": True}
    assert down.json()["checks"]["broker"] == NOT_READY
    assert str(redis_server.port) not in down.text
    assert back.status_code == 200
