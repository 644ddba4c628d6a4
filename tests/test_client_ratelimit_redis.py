"""The rate limiter on Redis: one budget and one pause shared by separate limiter
objects (as separate worker processes would hold), changed by the storage URI alone.

Starts a throw-away ``redis-server`` on loopback; skipped when none is installed, unless
``SYNCD_REQUIRE_REDIS=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncd.ratelimit import LimitsRateLimiter
from tests.procs import RedisServer, redis_binary

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("redis")
    server = RedisServer(redis_binary(), folder, appendonly=False).start()
    try:
        yield server.url
    finally:
        server.stop()


class _SleptError(Exception):
    pass


def _no_sleep(seconds: float) -> None:
    raise _SleptError(seconds)


def test_two_limiters_on_redis_share_one_budget(redis_uri: str) -> None:
    first = LimitsRateLimiter(1, 4, storage_uri=redis_uri, key="shared", sleep=_no_sleep)
    second = LimitsRateLimiter(1, 4, storage_uri=redis_uri, key="shared", sleep=_no_sleep)
    first.reset()
    for limiter in (first, second, first, second):
        limiter.acquire()
    with pytest.raises(_SleptError):
        second.acquire()
    assert "storage=redis://" in repr(first)
    assert "127.0.0.1" not in repr(first)  # the storage address may carry a password


def test_a_pause_on_redis_holds_the_other_limiter(redis_uri: str) -> None:
    first = LimitsRateLimiter(100, 100, storage_uri=redis_uri, key="pause")
    second = LimitsRateLimiter(100, 100, storage_uri=redis_uri, key="pause")
    first.reset()
    first.pause(1)
    assert 0.5 < second.paused_for() <= 1.0
    begun = time.monotonic()
    second.acquire()
    assert time.monotonic() - begun >= 0.5
    second.reset()


def test_the_guard_holds_across_limiters_sharing_redis(redis_uri: str) -> None:
    """Three limiter objects (three worker processes) with four threads each: no
    ``amount + 1`` slots are ever taken within ``window + guard``, as Redis's clock
    stamped them. Checked apart from taking, two processes could both see room for the
    last slot (two workers put 51 requests in one second of a 50/s budget)."""
    amount, guard, takes = 5, 0.3, 20
    limiters = [
        LimitsRateLimiter(amount, amount, storage_uri=redis_uri, key="guarded", guard=guard)
        for _ in range(3)
    ]
    granted: list[float] = []
    record = threading.Lock()
    for limiter in limiters:
        take = limiter._guarded_take
        assert take is not None

        def stamped(*args: Any, take: Callable[..., object] = take, **kwargs: Any) -> object:
            answer = take(*args, **kwargs)
            if answer != 0:
                with record:
                    granted.append(float(answer))  # type: ignore[arg-type]
            return answer

        limiter._guarded_take = stamped

    def work(limiter: LimitsRateLimiter, count: int) -> None:
        for _ in range(count):
            limiter.acquire()

    threads = [
        threading.Thread(target=work, args=(limiter, takes // 12 + (i < takes % 12)))
        for i, limiter in enumerate(limiter for limiter in limiters for _ in range(4))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(granted) == takes
    granted.sort()
    gaps = [later - earlier for earlier, later in zip(granted, granted[amount:], strict=False)]
    assert min(gaps) >= 1 + guard - 1e-6, gaps
