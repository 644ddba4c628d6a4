"""Retries of one client call: which failures, how long to wait, when to give up.

Only :class:`~syncd.errors.RetriableError` is retried, and not a connection this machine
refused (nothing listens on that loopback port: a wrong ``base_url``, or a server not
started), which fails the call at once. The wait after the n-th failure is
the server's ``Retry-After`` when it sent one (plus jitter, never less than asked),
otherwise ``min(wait_max, wait_initial * 2**(n-1) + jitter)``. A call stops after
``attempts`` tries or once ``timeout`` seconds have gone, whichever comes first; a
``Retry-After`` that would end beyond that budget is not waited for at all: the error
goes to the caller at once (with its ``retry_after``) so a scheduler can come back later.

Built on stamina, so ``stamina.set_testing(True)`` makes every wait zero in tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import stamina

from syncd.config import RetrySettings
from syncd.errors import ConnectionFailedError, RetriableError

T = TypeVar("T")


class RetryBudget:
    """The stamina backoff hook for one call: decides whether and how long to wait.

    One instance per call; it counts the failures and keeps the call's deadline.
    """

    def __init__(
        self, settings: RetrySettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._deadline = clock() + settings.timeout
        self.failures = 0

    def remaining(self) -> float:
        """Seconds left of this call's total budget."""
        return self._deadline - self._clock()

    def __call__(self, exc: BaseException) -> bool | float:
        """``False`` to give up on ``exc``, else the seconds to wait before the next try."""
        if not isinstance(exc, RetriableError):
            return False
        if isinstance(exc, ConnectionFailedError) and exc.nothing_listens:
            return False  # refused on this machine: another try now finds the same
        self.failures += 1
        remaining = self.remaining()
        if remaining <= 0:
            return False
        s = self._settings
        jitter = random.uniform(0, s.wait_jitter) if s.wait_jitter else 0.0
        if exc.retry_after is not None:
            if exc.retry_after > remaining:
                return False
            return min(exc.retry_after + jitter, remaining)
        exponent = min(self.failures - 1, 64)  # 2**64 * anything > any wait_max
        return min(s.wait_max, s.wait_initial * 2.0**exponent + jitter, remaining)


def attempts(settings: RetrySettings) -> Iterator[stamina.Attempt]:
    """stamina's retry context for one call under ``settings``: iterate, and run one try
    inside each ``with attempt:``."""
    budget = RetryBudget(settings)
    return iter(
        stamina.retry_context(
            on=budget,
            attempts=settings.attempts,
            timeout=settings.timeout,
            wait_initial=settings.wait_initial,
            wait_max=settings.wait_max,
            wait_jitter=settings.wait_jitter,
        )
    )


def call_with_retries(settings: RetrySettings, fn: Callable[[], T]) -> T:
    """``fn()``, retried under ``settings`` on retriable errors; the last error if all fail."""
    for attempt in attempts(settings):
        with attempt:
            return fn()
    raise AssertionError("unreachable: stamina re-raises the last error")
