"""Everything the sandbox holds, and its start state (what ``reset`` returns to)."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from syncd.sandbox.asgi import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT
from syncd.sandbox.auth import TokenGrant
from syncd.sandbox.catalogue import Catalogue
from syncd.sandbox.faults import FaultSettings
from syncd.sandbox.reqlog import RequestLog
from syncd.sandbox.store import DeviceRow, DeviceStore
from syncd.sandbox.throttle import RateLimiter

DEFAULT_LIVE_CHECK_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    """How a sandbox starts (the command-line options, parsed)."""

    grants: tuple[TokenGrant, ...]
    catalogue: Catalogue
    #: Makes the start-state devices afresh (called at start and on every reset).
    initial_devices: Callable[[], Iterable[DeviceRow]] = tuple
    faults: FaultSettings = field(default_factory=FaultSettings)
    live_check_delay: float = DEFAULT_LIVE_CHECK_DELAY
    seed: int | None = None
    control: bool = False
    #: Required by the control API when set (always set when bound beyond loopback).
    control_token: SecretStr | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    request_log_path: Path | None = None
    request_log_max: int = 1_000_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while making many rows: it would rescan them all, over and over."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class SandboxState:
    """The store, the fault settings, the random source, the log and the throttle."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.catalogue = options.catalogue
        self.store = DeviceStore()
        self.log = RequestLog(path=options.request_log_path, max_entries=options.request_log_max)
        self.faults = options.faults.copy()
        self.rng = random.Random(options.seed)
        self._limiter: RateLimiter | None = None
        self.reset()

    def reset(self) -> None:
        """Back to the start: devices, request log, faults, random seed, throttle history."""
        self.store.clear()
        with gc_paused():
            self.store.put_many(self.options.initial_devices())
        self.faults = self.options.faults.copy()
        self.rng = random.Random(self.options.seed)
        self.log.clear()
        self._limiter = None

    @property
    def limiter(self) -> RateLimiter | None:
        """The throttle for the current ``rate_limit`` (new history when the rate changes)."""
        rate = self.faults.rate_limit
        if rate is None:
            self._limiter = None
        elif self._limiter is None or self._limiter.rate != rate:
            self._limiter = RateLimiter(rate)
        return self._limiter
