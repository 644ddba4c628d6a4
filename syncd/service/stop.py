"""Graceful shutdown: the first SIGTERM or SIGINT asks the run to stop at the next safe point.

A safe point is between two batches of a source, between the steps of a run, and
between two changes of the outbox: the change in flight is finished and recorded,
nothing new is started, and the run is closed as ``interrupted`` with what it did.
A second signal does not wait: it raises ``KeyboardInterrupt`` at once; the change
then in flight is left for the next run to recover (a create is read back before
anything else is decided, see ``syncd.service.recovery``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import structlog

log = structlog.get_logger("syncd.stop")

#: The signals that ask for a graceful stop.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Whether a stop was asked for, and by which signal (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: int | None = None

    def __repr__(self) -> str:
        return f"StopRequest(requested={self.requested}, signal={self.signal})"

    def request(self, signum: int | None = None) -> None:
        """Ask the run to stop at its next safe point."""
        if self.signal is None:
            self.signal = signum
        self._event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self._event.is_set()

    @property
    def reason(self) -> str:
        """How the stop was asked for, for people (``"SIGTERM"``)."""
        if self.signal is None:
            return "a stop request"
        return signal.Signals(self.signal).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT)."""
        return 128 + (self.signal if self.signal is not None else int(signal.SIGINT))


@contextmanager
def stop_on_signals(stop: StopRequest | None = None) -> Iterator[StopRequest]:
    """Inside, SIGTERM and SIGINT set ``stop`` (a second one raises ``KeyboardInterrupt``).

    Only the main thread can install signal handlers; elsewhere this yields ``stop``
    without installing any. The previous handlers are restored on the way out.
    """
    request = stop if stop is not None else StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if request.requested:
            log.warning("stop.now", signal=signal.Signals(signum).name)
            raise KeyboardInterrupt
        request.request(signum)
        log.warning(
            "stop.requested",
            signal=signal.Signals(signum).name,
            detail="finishing the change in flight; send it again to stop at once",
        )

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
