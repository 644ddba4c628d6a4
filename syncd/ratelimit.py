"""Client-side pacing of requests to the inventory API.

A :class:`RateLimiter` has two verbs: :meth:`~RateLimiter.acquire` blocks until one more
request may go, and :meth:`~RateLimiter.pause` makes every user of the limiter hold off
for a while (the client calls it when the server answers ``429``/``503`` with
``Retry-After``, so all threads back off, not only the one that was told).

:class:`LimitsRateLimiter` is built on the ``limits`` library. Its state lives in a
``limits`` storage named by URI: ``memory://`` keeps it in this process (shared by every
thread using the same limiter object); ``redis://host:6379`` shares one limit, and one
pause, across processes and hosts. Nothing else changes between the two.

How ``requests_per_second`` and ``burst`` become a ``limits`` window: ``limits`` counts
in whole seconds, so the limiter allows ``amount`` requests in any moving window of
``window`` seconds, with ``window = max(1, ceil(burst / rate))`` and
``amount = max(1, floor(rate * window))``. The average never exceeds the configured rate;
the burst is ``amount`` (equal to ``burst`` when ``burst >= rate`` and the product is
whole; a ``burst`` below the rate cannot be expressed in whole seconds and becomes one
second's worth of requests). With the defaults (10/s, burst 10) that is exactly
"at most 10 requests in any one second".

A request takes a slot only when fewer than ``amount`` requests took one in the last
``window + guard`` seconds (``guard``: 50 ms unless ``rate_limit.guard`` says otherwise),
and a thread that has to wait sleeps until that is so. The server counts a request when
it *arrives*, and the time between taking a slot and arriving varies (a busy machine,
the network): a request let go the instant an old one leaves the window would otherwise
land in the server's previous second. The guard costs at most ``guard / window`` of the
budget at full speed.

On Redis, the test against ``window + guard`` and the taking of the slot are one Lua
script (:data:`_GUARDED_TAKE`), so the guard holds across processes: checked by this
process and taken apart, two workers could each see room for the last slot, and 51
requests reached the server in one second of a 50/s budget. In memory, the limiter's
own lock makes the two steps one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from limits import RateLimitItemPerSecond
from limits.storage import MovingWindowSupport, RedisStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES

from syncd import metrics
from syncd.config import RateLimitSettings

Strategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]

#: The longest pause one ``Retry-After`` can impose on everybody (a broken proxy saying
#: "come back tomorrow" must not freeze the daemon; the call itself still fails).
MAX_PAUSE_SECONDS = 300.0


#: Take a slot of the moving window ``KEYS[1]`` (a list of start times, newest first, as
#: ``limits`` keeps it) only if fewer than ``limit`` started in the last ``span`` seconds
#: (``window + guard``). ARGV: limit, span. The time is Redis's own, so the list stays in
#: order whichever client's script runs first. Returns the start time taken, or 0.
_GUARDED_TAKE = """
local limit = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local entry = redis.call('lindex', KEYS[1], limit - 1)
if entry and tonumber(entry) >= now - span then
    return 0
end
local stamp = string.format('%.6f', now)
redis.call('lpush', KEYS[1], stamp)
redis.call('ltrim', KEYS[1], 0, limit - 1)
redis.call('pexpire', KEYS[1], math.ceil(span * 1000))
return stamp
"""


@runtime_checkable
class RateLimiter(Protocol):
    """What the inventory client needs from a rate limiter."""

    def acquire(self) -> None:
        """Block until one more request may be sent."""

    def pause(self, seconds: float) -> None:
        """Make every ``acquire`` wait until ``seconds`` from now have passed."""


class Unlimited:
    """A limiter that never waits (tests, one-off scripts)."""

    def acquire(self) -> None:
        """Return at once."""

    def pause(self, seconds: float) -> None:
        """Ignore the pause: without a shared limiter each call backs off on its own."""

    def __repr__(self) -> str:
        return "Unlimited()"


def window_for(requests_per_second: float, burst: int) -> tuple[int, int]:
    """``(amount, window_seconds)``: the whole-second moving window that paces
    ``requests_per_second`` with the given ``burst`` (see the module docstring)."""
    if requests_per_second <= 0:
        raise ValueError("requests_per_second must be > 0")
    if burst < 1:
        raise ValueError("burst must be >= 1")
    # The small epsilons keep 0.1 * 10 from becoming 0.9999 and losing a request.
    window = max(1, math.ceil(burst / requests_per_second - 1e-9))
    amount = max(1, math.floor(requests_per_second * window + 1e-9))
    return amount, window


class LimitsRateLimiter:
    """A thread-safe rate limiter over a ``limits`` storage (in memory or Redis).

    ``key`` names the limit inside the storage: limiters with the same storage and key
    share one budget (use one key per API token). The token itself never goes into the key.
    ``guard`` is added to every wait for a slot (see :meth:`acquire`).
    """

    def __init__(
        self,
        requests_per_second: float,
        burst: int = 1,
        *,
        storage_uri: str = "memory://",
        key: str = "inventory",
        strategy: Strategy = "moving-window",
        guard: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if guard < 0:
            raise ValueError("guard must be >= 0")
        self._guard = guard
        self._amount, self._window = window_for(requests_per_second, burst)
        self._item = RateLimitItemPerSecond(self._amount, self._window, namespace="syncd")
        self._storage_uri = storage_uri
        storage = storage_from_string(storage_uri)
        if not isinstance(storage, Storage):
            raise ValueError(f"{storage_uri.split(':', 1)[0]}: not a synchronous limits storage")
        self._storage: Storage = storage
        self._strategy = STRATEGIES[strategy](self._storage)
        self._strategy_name = strategy
        self._key = key
        self._pause_key = f"syncd/pause/{key}"
        self._sleep = sleep
        # limits' memory storage can hand two threads different per-key locks while it
        # expires entries, so serialise hits here; Redis is atomic on its own.
        self._lock = threading.Lock()
        self._guarded_take: Callable[..., object] | None = None
        if isinstance(storage, RedisStorage) and strategy == "moving-window" and guard > 0:
            self._guarded_take = storage.get_connection().register_script(_GUARDED_TAKE.encode())

    @classmethod
    def from_settings(
        cls,
        settings: RateLimitSettings,
        *,
        storage_uri: str = "memory://",
        key: str = "inventory",
    ) -> LimitsRateLimiter:
        """A limiter paced by ``[inventory.rate_limit]``."""
        return cls(
            settings.requests_per_second,
            settings.burst,
            storage_uri=storage_uri,
            key=key,
            guard=settings.guard,
        )

    @property
    def amount(self) -> int:
        """Requests allowed in any one window."""
        return self._amount

    @property
    def window(self) -> int:
        """Length of the moving window, seconds."""
        return self._window

    def __repr__(self) -> str:
        scheme = self._storage_uri.split(":", 1)[0]
        return (
            f"LimitsRateLimiter({self._amount} per {self._window}s, "
            f"{self._strategy_name}, storage={scheme}://…, key={self._key!r})"
        )

    def acquire(self) -> None:
        """Block until the window, stretched by the guard, has room (and any pause has
        passed), then take a slot. The time slept is recorded (``syncd.metrics``: the
        rate limiter's wait)."""
        waited = 0.0
        while True:
            wait = self.paused_for()
            if wait <= 0:
                with self._lock:
                    if self._take():
                        metrics.limiter_wait(waited)
                        return
                    wait = self._crowded_for()
                    if wait <= 0:
                        stats = self._strategy.get_window_stats(self._item, self._key)
                        wait = stats.reset_time + self._guard - time.time()
            # Re-check at least once per window: another process may have freed room or
            # paused us meanwhile.
            pause = min(max(wait, 0.001), float(self._window) + self._guard)
            self._sleep(pause)
            waited += pause

    def _take(self) -> bool:
        """Take a slot if the window, stretched by the guard, has room: one step."""
        if self._guarded_take is not None:
            assert isinstance(self._storage, RedisStorage)
            key = self._storage.prefixed_key(self._item.key_for(self._key))
            span = self._window + self._guard
            return self._guarded_take(keys=[key], args=[self._amount, span]) != 0
        return self._crowded_for() <= 0 and bool(self._strategy.hit(self._item, self._key))

    def _crowded_for(self) -> float:
        """Seconds until fewer than ``amount`` requests started in the last ``window +
        guard`` (0: now). Only the moving window keeps the start times it needs."""
        moving = self._strategy_name == "moving-window"
        if self._guard <= 0 or not moving or not isinstance(self._storage, MovingWindowSupport):
            return 0.0
        key = self._item.key_for(self._key)
        oldest, count = self._storage.get_moving_window(
            key,
            self._amount,
            self._window + self._guard,  # type: ignore[arg-type]
        )
        if count < self._amount:
            return 0.0
        return oldest + self._window + self._guard - time.time()

    def pause(self, seconds: float) -> None:
        """Hold every user of this limiter (all threads; all processes on a shared
        storage) for ``seconds``, capped at :data:`MAX_PAUSE_SECONDS`. A shorter pause
        never cuts a longer one short."""
        seconds = min(seconds, MAX_PAUSE_SECONDS)
        if seconds <= 0:
            return
        # limits storages hold integer counters with whole-second expiries, so the
        # counter carries the end of the pause (epoch ms) and the expiry only cleans up.
        until_ms = math.ceil((time.time() + seconds) * 1000)
        with self._lock:
            if self.paused_for() >= seconds:
                return
            self._storage.clear(self._pause_key)
            self._storage.incr(self._pause_key, math.ceil(seconds) + 1, amount=until_ms)

    def paused_for(self) -> float:
        """Seconds left of the current pause; 0 when not paused."""
        until_ms = self._storage.get(self._pause_key)
        if until_ms <= 0:
            return 0.0
        # Two processes pausing at once can add their values up; the key's expiry
        # still ends that pause, and the cap keeps the arithmetic sane meanwhile.
        return min(max(0.0, until_ms / 1000 - time.time()), MAX_PAUSE_SECONDS)

    def reset(self) -> None:
        """Forget every request and pause recorded under this limiter's key."""
        with self._lock:
            self._strategy.clear(self._item, self._key)
            self._storage.clear(self._pause_key)
