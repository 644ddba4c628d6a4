"""Per-token request rate limit, DRF's ``SimpleRateThrottle`` algorithm.

A rate is ``N/period`` with period ``s``/``sec``/``second``, ``m``/``min``,
``h``/``hour`` or ``d``/``day`` (DRF reads the first letter). Each token keeps the
times of its accepted requests within the period; a request beyond ``N`` is
throttled and not recorded, and the answer says how long to wait:
``Retry-After`` is that wait rounded up to whole seconds (at least 1).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Rate:
    """``requests`` per ``seconds``."""

    requests: int
    seconds: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "hour", 86400.0: "day"}.get(self.seconds, "s")
        return f"{self.requests}/{unit}"


def parse_rate(text: str) -> Rate:
    """``"10/s"``, ``"600/min"``, ``"5000/hour"``; raises ``ValueError`` otherwise."""
    count, sep, period = text.strip().partition("/")
    if not sep or not period:
        raise ValueError(f"rate {text!r} is not N/period (e.g. 10/s, 600/min)")
    seconds = _PERIODS.get(period.strip()[0].lower())
    if seconds is None:
        raise ValueError(f"rate {text!r}: the period must be s, min, hour or day")
    requests = int(count)
    if requests < 1:
        raise ValueError(f"rate {text!r}: at least one request per period")
    return Rate(requests, seconds)


def throttle_message(wait: float) -> str:
    """DRF's ``Throttled`` detail for a wait of ``wait`` seconds."""
    return throttle_detail(retry_after_seconds(wait))


def throttle_detail(seconds: int) -> str:
    """DRF's ``Throttled`` detail saying ``seconds`` (the ``Retry-After`` value)."""
    unit = "second" if seconds == 1 else "seconds"
    return f"Request was throttled. Expected available in {seconds} {unit}."


def retry_after_seconds(wait: float) -> int:
    """The ``Retry-After`` value for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


class RateLimiter:
    """Sliding-window request history per key (the token)."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._history: dict[str, deque[float]] = {}

    def check(self, key: str, now: float) -> float | None:
        """Record a request at ``now`` (monotonic seconds); the wait if it is throttled."""
        history = self._history.setdefault(key, deque())
        horizon = now - self.rate.seconds
        while history and history[0] <= horizon:
            history.popleft()
        if len(history) >= self.rate.requests:
            # the oldest request in the window leaving it frees the next slot
            return self.rate.seconds - (now - history[0])
        history.append(now)
        return None
