"""Who is running: a process identity that survives in the store, and whether it still lives.

A change being applied is claimed by a process, and a run is owned by one. When such a
process dies (``kill -9``, a crash, the machine going down), its claims must not wait
for a lease to run out if another process on the same machine can tell it is gone.
``ProcessIdentity`` is written with each claim and run; ``liveness`` answers, for an
identity read back from the store, one of:

- ``"alive"``: the same process (same pid *and* same start time) still runs here;
- ``"dead"``: it ran on this machine, in this boot and pid namespace, and no longer
  does (its pid is gone or now belongs to a younger process);
- ``"unknown"``: another machine, container, boot, or a system without ``/proc``:
  only a lease can tell (the caller falls back to the claim's age).

The identity is ``host:pid:start:boot:pidns``: the start time (clock ticks after boot,
``/proc/PID/stat`` field 22) tells a reused pid from the original; the boot id and
the pid namespace keep two containers or two boots from judging each other's pids.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

Liveness = Literal["alive", "dead", "unknown"]

#: The prefix of an identity whose process gave its claim up on purpose (a forced
#: interrupt while a create was in flight): its claims are recovered at once.
GIVEN_UP: Final = "interrupted:"

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """One process, as recorded in the store."""

    host: str
    pid: int
    start: str
    boot: str
    pidns: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}:{self.boot}:{self.pidns}"

    @classmethod
    def parse(cls, text: str | None) -> ProcessIdentity | None:
        """The identity ``str()`` wrote, or ``None`` for anything else."""
        if not text:
            return None
        parts = text.split(":")
        if len(parts) != 5 or not parts[1].isdigit():
            return None
        host, pid, start, boot, pidns = parts
        return cls(host, int(pid), start, boot, pidns)

    @classmethod
    def of_pid(cls, pid: int) -> ProcessIdentity | None:
        """The identity of a process of this machine (``None`` if it is not running)."""
        start = _start_time(pid)
        if start is None:
            return None
        here = _here()
        return cls(here.host, pid, start, here.boot, here.pidns)


@functools.cache
def _here() -> ProcessIdentity:
    """This machine's host, boot and namespace (and this process's pid and start)."""
    boot = _read(_PROC / "sys/kernel/random/boot_id").replace(":", "")
    try:
        pidns = str((_PROC / "self/ns/pid").readlink()).replace(":", "")
    except OSError:
        pidns = ""
    pid = os.getpid()
    return ProcessIdentity(
        socket.gethostname().replace(":", "_"), pid, _start_time(pid) or "", boot, pidns
    )


def current() -> ProcessIdentity:
    """This process (computed again after a fork, whose child has another pid)."""
    here = _here()
    if here.pid == os.getpid():
        return here
    _here.cache_clear()
    return _here()


def liveness(recorded: str | None) -> Liveness:
    """Whether the process ``recorded`` (an identity's text) still runs; see the module."""
    if recorded is not None and recorded.startswith(GIVEN_UP):
        return "dead"
    who = ProcessIdentity.parse(recorded)
    here = current()
    if who is None or not here.boot or not here.pidns or not who.start:
        return "unknown"
    if (who.host, who.boot, who.pidns) != (here.host, here.boot, here.pidns):
        return "unknown"
    start = _start_time(who.pid)
    return "alive" if start == who.start else "dead"


def _start_time(pid: int) -> str | None:
    stat = _read(_PROC / str(pid) / "stat")
    if not stat:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; field 22 is
    # the 20th after the closing parenthesis.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to ask
        return None
    return trim


def give_back_memory() -> None:
    """Ask the C allocator to return the free memory at the top of its heaps to the
    system (glibc's ``malloc_trim``; nothing elsewhere). After a batch of a million
    rows, glibc keeps what Python and SQLite freed mapped in the process for good
    (80 MB after 300k rows here), and a first run's later steps pile on top of it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


#: The cyclic garbage collector's thresholds while bulk work runs (``bulk_work``).
BULK_GC_THRESHOLDS: Final = (5_000, 10, 100)


class _BulkWork:
    """How many bulk phases run in this process now, and the thresholds to restore."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: tuple[int, int, int] = gc.get_threshold()


_BULK = _BulkWork()


@contextmanager
def bulk_work() -> Iterator[None]:
    """Run bulk work (an ingest, a refresh, a plan: a million rows in chunks) with the
    cyclic garbage collector's thresholds raised, and put them back after.

    Such work holds a chunk of a few thousand rows' objects across the collector's
    young collections, so they are promoted to the oldest generation and die there,
    and after every ten collections of the middle generation a full collection walks
    the whole heap (every module's objects included): 35 of them, 2.5 s of a 1M
    refresh's 14 s. Raised, a full collection waits for a hundred of the middle ones
    (one in a 1M refresh), and the young collections come every 5,000 allocations
    instead of 700. Higher young thresholds were measured too: 50,000 halves a
    refresh's remaining collector time but doubles a dry run's, whose whole plan
    survives every collection. Reference counting frees everything as before; only
    cycles wait longer. Nested and concurrent phases (a worker's threads) share one
    raise: the thresholds go back when the last one ends."""
    with _BULK.lock:
        if _BULK.depth == 0:
            _BULK.saved = gc.get_threshold()
        if _BULK.depth == 0 and _BULK.saved[0]:  # a threshold of 0: collection is off
            gc.set_threshold(
                *(max(now, bulk) for now, bulk in zip(_BULK.saved, BULK_GC_THRESHOLDS, strict=True))
            )
        _BULK.depth += 1
    try:
        yield
    finally:
        with _BULK.lock:
            _BULK.depth -= 1
            if _BULK.depth == 0:
                gc.set_threshold(*_BULK.saved)
