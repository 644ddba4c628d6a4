"""Scale-out beat: ``celery-redbeat``'s scheduler, made to ride out a Redis restart.

RedBeat keeps the schedule and a lock in Redis, so however many ``syncd beat`` run,
one schedules and the others wait. Its own scheduler ends beat on the first Redis
error (extending the lock is not retried), or leaves it hanging without a lock, so a
Redis restart silenced the schedule (and the sweeper with it) until someone restarted
beat. This one, on a tick that cannot reach Redis, logs and tries again a second
later; when Redis is back it installs the schedule again (a Redis that lost its data
lost the schedule too) and takes the lock again if it lost it meanwhile, or waits for
it like any standby beat if another took it.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery.beat import SchedulingError
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger("syncd.beat")

#: Seconds between two tries while Redis cannot be reached, or the lock is another's.
RETRY = 1.0
#: Redis errors a restart brings (``LOADING`` answers are ``ResponseError``\\ s).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ResponseError)


class Scheduler(RedBeatScheduler):  # type: ignore[misc]
    """``redbeat.RedBeatScheduler`` that survives Redis going away (see the module)."""

    _outage = False
    lock: Any = None

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            if self._outage:
                self.setup_schedule()
                self._outage = False
                log.info("beat.redis_back")
            if self.lock_key and self.lock is None and not self._take_lock():
                return RETRY
            interval: float = super().tick(*args, **kwargs)
        except LockError:
            log.warning("beat.lock_lost", detail="another beat may schedule now; waiting")
            self.lock = None
            return RETRY
        except UNREACHABLE as exc:
            if not self._outage:
                log.warning("beat.redis_unavailable", error=str(exc), retry_in=RETRY)
            self._outage = True
            return RETRY
        return interval

    def apply_async(self, entry: Any, *args: Any, **kwargs: Any) -> Any:
        """Send a due entry; if Redis went away meanwhile, say so in one line (redbeat
        would log the error with a traceback) and let the next tick wait for Redis. The
        entry is due again at its next time; a run it would have started is not lost
        work (the sweeper and the next run pick up whatever waits in the store)."""
        try:
            return super().apply_async(entry, *args, **kwargs)
        except (*UNREACHABLE, SchedulingError) as exc:
            # celery wraps a failed send in SchedulingError; redbeat's own bookkeeping
            # (``reserve``) raises the Redis error as it is
            cause = exc.__context__ if isinstance(exc, SchedulingError) else exc
            if not isinstance(cause, UNREACHABLE):
                raise
            if not self._outage:
                log.warning("beat.redis_unavailable", error=str(cause), entry=entry.name)
            self._outage = True
            return None

    def _take_lock(self) -> bool:
        """Take beat's lock if it is free (without waiting): as redbeat does at start."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        if not lock.acquire(blocking=False):
            return False
        log.info("beat.lock_taken")
        self.lock = lock
        return True

    def close(self) -> None:
        """Let go of the lock if Redis can still be told; a stop never fails on it."""
        try:
            super().close()
        except (*UNREACHABLE, LockError) as exc:
            log.warning("beat.close_without_redis", error=str(exc))
