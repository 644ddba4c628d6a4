"""Named locks with a lease, shared by every process of one deployment.

One run of a connector at a time, one planner at a time, one inventory listing at a
time: each is a named lock with a lease, so a holder that dies frees it when the lease
runs out, or at once when it was a process of this machine known to be gone. The
embedded deployment keeps them in the state store (``StoreLocks``); scale-out keeps
them in Redis (``RedisLocks``), next to the broker and the rate budget. Both take a
lock atomically (one of racing takers wins), extend it for the holder, and release it
only for the holder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from syncd.errors import StateError
from syncd.process import liveness

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.store import Store


log = structlog.get_logger("syncd.locks")


class LockBusyError(StateError):
    """The lock is held by another owner (``holder`` says who, if known)."""

    def __init__(self, name: str, holder: str | None) -> None:
        super().__init__(f"{name} is held by {holder or 'another process'}")
        self.name = name
        self.holder = holder


class Locks(Protocol):
    """What syncd needs of a lock service."""

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        """Take (or, for its holder, extend) ``name`` for ``lease`` seconds."""
        ...

    def release(self, name: str, owner: str) -> None:
        """Let go of ``name`` if ``owner`` holds it."""
        ...

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (``None``: nobody)."""
        ...


class StoreLocks:
    """Locks in the state store's ``lease_lock`` table (the embedded deployment)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return "StoreLocks()"

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        return self._store.acquire_lock(name, owner, timedelta(seconds=lease))

    def release(self, name: str, owner: str) -> None:
        self._store.release_lock(name, owner)

    def holder(self, name: str) -> str | None:
        held = self._store.lock_holder(name)
        return None if held is None else held[0]


_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLocks:
    """Locks in Redis (scale-out): ``SET`` with a ``PX`` expiry, taken and released by
    owner through small scripts, so no process ever frees another's lock."""

    def __init__(self, url: str, *, prefix: str = "syncd:lock:") -> None:
        import redis  # only when scaling out

        self._redis: Any = redis.Redis.from_url(url)
        self._prefix = prefix
        self._acquire: Callable[..., Any] = self._redis.register_script(_ACQUIRE)
        self._release: Callable[..., Any] = self._redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisLocks(prefix={self._prefix!r})"

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        millis = max(1, int(lease * 1000))
        return bool(self._acquire(keys=[self._prefix + name], args=[owner, millis]))

    def release(self, name: str, owner: str) -> None:
        self._release(keys=[self._prefix + name], args=[owner])

    def holder(self, name: str) -> str | None:
        value = self._redis.get(self._prefix + name)
        return None if value is None else bytes(value).decode()

    def close(self) -> None:
        self._redis.close()


def locks_for(settings: Settings, store: Store) -> Locks:
    """Redis locks when the daemon scales out over a Redis broker, else the store's."""
    if settings.daemon.scale_out:
        return RedisLocks(settings.daemon.broker_url)
    return StoreLocks(store)


@contextmanager
def held(
    locks: Locks,
    name: str,
    owner: str,
    lease: float,
    *,
    wait: float = 0.0,
    poll: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold ``name`` inside the block; waits up to ``wait`` seconds for it, then raises
    ``LockBusyError``. Released on the way out (also on errors).

    A holder known to be dead (a process of this machine that is gone: ``kill -9``, a
    crash) is not waited for: its lease would keep every run of that connector skipped
    for up to ``daemon.run_lease``. Its lock is released for it and taken."""
    deadline = time.monotonic() + wait
    while not locks.acquire(name, owner, lease):
        holder = locks.holder(name)
        if holder is not None and holder != owner and liveness(holder) == "dead":
            locks.release(name, holder)  # only if that dead process still holds it
            log.warning("lock.taken_from_dead_holder", lock=name, holder=holder)
            continue
        if time.monotonic() >= deadline:
            raise LockBusyError(name, holder)
        sleep(poll)
    try:
        yield
    finally:
        locks.release(name, owner)
