"""The in-process rate limiter: pacing, thread safety, shared pauses.

The pacing checks are lower bounds the limiter guarantees (the (k*n+1)-th request
cannot start before k windows have passed), so they hold on a slow machine too.
The peak rate the server sees is checked against the sandbox in test_client_sandbox.
"""

from __future__ import annotations

import threading
import time

import pytest
from freezegun import freeze_time

from syncd.config import RateLimitSettings
from syncd.ratelimit import (
    MAX_PAUSE_SECONDS,
    LimitsRateLimiter,
    RateLimiter,
    Unlimited,
    window_for,
)


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [
        (10.0, 10, (10, 1)),  # the default: at most 10 in any one second
        (10.0, 20, (20, 2)),  # a larger burst widens the window, same average
        (0.5, 1, (1, 2)),  # slower than one a second
        (2.5, 5, (5, 2)),
        (2.5, 1, (2, 1)),  # burst below the rate: never faster than configured
        (0.1, 1, (1, 10)),
    ],
)
def test_window_never_exceeds_the_configured_rate(
    rate: float, burst: int, expected: tuple[int, int]
) -> None:
    amount, window = window_for(rate, burst)
    assert (amount, window) == expected
    assert amount / window <= rate + 1e-9


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="requests_per_second"):
        window_for(0, 1)
    with pytest.raises(ValueError, match="burst"):
        window_for(1, 0)


def test_limiters_satisfy_the_protocol() -> None:
    assert isinstance(Unlimited(), RateLimiter)
    assert isinstance(LimitsRateLimiter(5, 5), RateLimiter)


def test_from_settings_uses_rate_and_burst() -> None:
    limiter = LimitsRateLimiter.from_settings(RateLimitSettings(requests_per_second=4, burst=8))
    assert (limiter.amount, limiter.window) == (8, 2)
    assert "8 per 2s" in repr(limiter)


def test_threads_share_one_budget() -> None:
    """25 acquisitions at 10 per second from five threads need at least two seconds:
    the 21st cannot happen before the 1st has left a one-second window, twice over."""
    limiter = LimitsRateLimiter(10, 10, key="threads")
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                granted.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(granted) == 25
    assert max(granted) - started >= 2.0


def test_pause_holds_every_thread() -> None:
    limiter = LimitsRateLimiter(100, 100, key="pause")
    limiter.pause(1)
    waited: list[float] = []

    def worker() -> None:
        begun = time.monotonic()
        limiter.acquire()
        waited.append(time.monotonic() - begun)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(waited) == 3
    # paused_for measures against the storage's wall clock; allow for clock granularity.
    assert min(waited) >= 0.9


def test_a_short_pause_never_cuts_a_long_one_short() -> None:
    limiter = LimitsRateLimiter(100, 100, key="pause-order")
    limiter.pause(5)
    limiter.pause(0.2)
    assert limiter.paused_for() > 3
    limiter.reset()
    assert limiter.paused_for() == 0


def test_pause_is_capped() -> None:
    limiter = LimitsRateLimiter(100, 100, key="pause-cap")
    limiter.pause(86_400)
    assert 0 < limiter.paused_for() <= MAX_PAUSE_SECONDS
    limiter.reset()


class _SleptError(Exception):
    """Raised by a sleep that must not happen."""


def _forbidden_sleep(seconds: float) -> None:
    raise _SleptError(seconds)


def test_a_burst_goes_at_once_then_waits() -> None:
    limiter = LimitsRateLimiter(1, 10, key="burst", sleep=_forbidden_sleep)
    assert (limiter.amount, limiter.window) == (10, 10)
    for _ in range(10):
        limiter.acquire()  # would raise if it had to wait
    with pytest.raises(_SleptError):
        limiter.acquire()


def test_a_slot_freed_at_the_window_edge_is_reused_only_after_the_guard() -> None:
    """The server counts arrivals: a request let go the instant the oldest one leaves
    the window could arrive within the server's same second. Every request, not only
    one that already waited, keeps ``amount`` per ``window + guard``."""
    slept: list[float] = []
    with freeze_time("2026-01-01 00:00:00") as clock:

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            clock.tick(seconds)

        limiter = LimitsRateLimiter(2, 2, key="edge", guard=0.2, sleep=sleep)
        limiter.acquire()
        limiter.acquire()
        clock.tick(1.05)  # out of the one-second window, not out of window + guard
        limiter.acquire()
    assert 0.149 < sum(slept) < 0.2


def test_limiters_on_different_keys_do_not_share() -> None:
    first = LimitsRateLimiter(1, 1, key="a", sleep=_forbidden_sleep)
    second = LimitsRateLimiter(1, 1, key="b", sleep=_forbidden_sleep)
    first.acquire()
    second.acquire()
    with pytest.raises(_SleptError):
        first.acquire()


def test_fixed_window_strategy_paces_too() -> None:
    limiter = LimitsRateLimiter(3, 3, key="fixed", strategy="fixed-window", sleep=_forbidden_sleep)
    for _ in range(3):
        limiter.acquire()
    with pytest.raises(_SleptError):
        limiter.acquire()


def test_unknown_storage_is_refused() -> None:
    with pytest.raises(Exception, match="storage"):
        LimitsRateLimiter(1, 1, storage_uri="nosuch://x")
