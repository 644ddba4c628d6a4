"""The embedded daemon's message queue: kombu's ``filesystem`` transport, made safe for
several processes and quick to stop.

The embedded deployment has three processes writing messages into one folder (the
worker, beat's child process, ``syncd trigger``) and one reading them. kombu's own
transport creates a message file and only then writes it; its reader claims any
``*.msg`` file it lists, so it can claim one still empty, and the JSON error that follows
is an "unrecoverable error" that stops the whole worker. Here:

- a message is written under a hidden name and renamed into place, so a reader only
  ever sees whole files (the exchange table likewise is created whole or not at all);
- a message that cannot be read anyway (left by another version, damaged) is logged
  and dropped: a message is only a prompt, the store still holds the change and the
  sweeper sends it again when its lease runs out (``syncd.service.outbox``);
- the folder is listed once per batch of messages, not once per message (kombu lists
  and sorts the whole folder for every message, quadratic in a 10k-change backlog);
- waiting for messages ends as soon as the worker is asked to stop. Celery polls a
  non-socket transport in rounds of two seconds and starts one more round after a
  stop was asked for; a SIGTERM waited up to four seconds there before anything else
  of the shutdown began, and went on taking messages meanwhile.

``syncd.broker`` names this module as the transport (``broker_transport``); nothing
imports it but kombu.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import structlog
from kombu.transport import filesystem
from kombu.transport.virtual import Empty
from kombu.utils import json as kombu_json

log = structlog.get_logger("syncd.fsqueue")

#: kombu's JSON (it writes and reads the type markers of its own envelopes).
dumps = cast(Callable[[Any], str], kombu_json.dumps)
loads = cast(Callable[[str], Any], kombu_json.loads)

#: Prefix of a message file being written (never listed as a message).
PARTIAL = ".part-"


def _stopping() -> bool:
    """True once this process's Celery worker was asked to stop (warm or cold)."""
    from celery.worker import state  # a worker's own flags; set by its signal handlers

    # A flag holds the exit code once set, and a clean stop's code is 0: compare by identity.
    flags = (state.should_stop, state.should_terminate)
    return any(flag is not None and flag is not False for flag in flags)


class Channel(filesystem.Channel):
    """kombu's filesystem channel with whole-file writes and batched listing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._listed: dict[str, deque[str]] = {}

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Write the message under a hidden name, then rename it into the queue."""
        # The machine's monotonic clock, zero-padded: names sort in the order written,
        # across processes too.
        name = f"{time.monotonic_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        _write_whole(Path(self.data_folder_out) / name, dumps(payload).encode())

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        """The oldest message of ``queue``: claimed by renaming it out of the folder (of
        racing readers exactly one succeeds), read, deleted."""
        folder = Path(self.data_folder_in)
        pending = self._listed.setdefault(queue, deque())
        if not pending:
            suffix = f"{queue}.msg"
            names = (p.name for p in folder.iterdir() if p.name.partition(".")[2] == suffix)
            pending.extend(sorted(names))
        while pending:
            name = pending.popleft()
            claimed = Path(self.processed_folder) / f"{name}.{os.getpid()}"
            try:
                (folder / name).rename(claimed)
            except FileNotFoundError:
                continue  # taken by another reader
            try:
                payload = claimed.read_bytes()
            finally:
                if not self.store_processed:
                    claimed.unlink()
            try:
                return loads(payload.decode())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                log.warning("fsqueue.unreadable_message", file=name, error=str(exc))
        raise Empty()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        """Create the exchange table whole the first time; kombu updates it under a
        lock after that."""
        table = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        if not table.exists():
            self.control_folder.mkdir(exist_ok=True)
            entry = [[routing_key or "", pattern or "", queue or ""]]
            _write_whole(table, dumps(entry).encode(), replace=False)
        super()._queue_bind(exchange, routing_key, pattern, queue)  # type: ignore[no-untyped-call]


def _write_whole(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to a hidden file beside ``path`` and move it into place (with
    ``replace=False``, only if nothing is there yet: another process's file stands)."""
    partial = path.parent / f"{PARTIAL}{uuid.uuid4().hex}"
    try:
        with partial.open("xb") as handle:
            handle.write(data)
        if replace:
            partial.replace(path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class Transport(filesystem.Transport):
    """kombu's filesystem transport with the channel above and a prompt stop."""

    Channel = Channel

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        """Deliver one message, polling every ``polling_interval``; give up at once
        (``TimeoutError``, as when nothing came) when the worker is stopping."""
        started = time.monotonic()
        while True:
            if _stopping():
                raise TimeoutError
            try:
                self.cycle.get(self._deliver, timeout=timeout)  # type: ignore[union-attr]
                return
            except Empty:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise TimeoutError from None
                time.sleep(self.polling_interval or 0.1)
