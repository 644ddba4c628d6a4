"""The embedded broker's queue folder (``syncd.fsqueue``), through kombu as Celery uses it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.worker import state
from kombu.connection import Connection
from kombu.transport.virtual import BrokerState

from syncd import broker, fsqueue
from syncd.config import Settings
from syncd.fsqueue import PARTIAL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(daemon={"data_dir": tmp_path / "daemon"})
    broker.prepare(settings)
    return settings


@pytest.fixture
def folders(settings: Settings) -> dict[str, Path]:
    return broker.broker_folders(settings)


@pytest.fixture
def connection(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A kombu connection as the embedded daemon's Celery app makes it (with the
    declarations a process remembers forgotten: each test has its own folder)."""
    monkeypatch.setattr(fsqueue.Transport, "global_state", BrokerState())  # type: ignore[no-untyped-call]
    conf = broker.celery_config(settings)
    with Connection(  # type: ignore[no-untyped-call]
        conf["broker_url"],
        transport=conf["broker_transport"],
        transport_options=conf["broker_transport_options"],
    ) as conn:
        yield conn


def test_messages_arrive_in_order_and_leave_nothing_behind(
    connection: Any, folders: dict[str, Path]
) -> None:
    with connection.SimpleQueue("syncd") as queue:
        for n in range(5):
            queue.put({"n": n})
        got = []
        for _ in range(5):
            message = queue.get(timeout=2)
            got.append(message.payload["n"])
            message.ack()
    assert got == [0, 1, 2, 3, 4]
    assert [p.name for p in folders["queue"].iterdir()] == []
    assert [p.name for p in folders["processed"].iterdir()] == []


def test_a_message_file_still_being_written_is_skipped_not_fatal(
    connection: Any, folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """kombu's own writer creates the file before it writes it; a reader that claims it
    then used to raise a JSON error that stopped the whole worker."""
    with connection.SimpleQueue("syncd") as queue:
        (folders["queue"] / "1_a.syncd.msg").write_bytes(b"")  # created, not yet written
        (folders["queue"] / f"{PARTIAL}1234").write_bytes(b"{")  # ours, mid-write
        queue.put({"n": 1})
        message = queue.get(timeout=2)
        message.ack()
        assert message.payload == {"n": 1}
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)
    assert "fsqueue.unreadable_message" in capsys.readouterr().out
    assert [p.name for p in folders["queue"].iterdir()] == [f"{PARTIAL}1234"]


def test_a_message_is_renamed_into_the_queue_only_once_written_whole(
    connection: Any, folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[list[str], bytes]] = []
    real_replace = Path.replace

    def watching_replace(source: Path, target: Path) -> Path:
        listed = sorted(p.name for p in folders["queue"].glob("*.msg"))
        moves.append((listed, source.read_bytes()))
        return real_replace(source, target)

    monkeypatch.setattr(Path, "replace", watching_replace)
    with connection.SimpleQueue("syncd") as queue:
        queue.put({"n": 1})
        assert queue.get(timeout=2).payload == {"n": 1}
    ((listed, written),) = moves
    assert listed == []  # nothing a reader could claim while it was written
    assert json.loads(written)["properties"]["body_encoding"] == "base64"  # whole, when moved


def test_waiting_for_messages_ends_at_once_when_the_worker_is_stopping(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connection.SimpleQueue("syncd"):
        begun = time.monotonic()
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=1.0)
        assert time.monotonic() - begun >= 1.0  # nothing came: waits the whole timeout

        monkeypatch.setattr(state, "should_stop", 0)  # a warm stop, exit code 0
        begun = time.monotonic()
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=5.0)
        assert time.monotonic() - begun < 0.5
