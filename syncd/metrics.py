"""Counters measured where they happen, added up in the store for ``/metrics``.

The inventory client counts its requests (by method and status) and times them; the
rate limiter records how long each request waited for its slot. Both happen in
whichever process talks to the API: ``syncd run``, ``syncd approve``, the daemon's
workers, on one machine or several. Each process keeps its increments here, in
memory (a dictionary under a lock: nothing on the request path touches a disk or the
network), and ``flush(store)`` adds them to the store's sums (``metric_sample``),
which ``syncd serve`` turns into Prometheus counters and histograms.

Why the store rather than ``prometheus_client``'s multiprocess mode: that mode shares
files in one folder, so it sees only the processes of one machine with the same
environment variable set before the library is imported, and loses or resets counts
when the folder is cleaned. The store is already shared by every process of a
deployment (SQLite embedded, PostgreSQL scaled out), so the sums cover every process
on every machine and survive restarts: a counter that goes down only if the store is
replaced. The price is one small write per flush: at the end of each run and
approval, and from daemon workers at most every ``FLUSH_EVERY`` seconds while they
apply changes and at each sweep.

No label carries a serial, a URL or a token: requests are labelled by method and
status only, so a label's values stay few (cardinality).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

import structlog

log = structlog.get_logger("syncd.metrics")

#: Requests to the inventory API, by ``method`` and ``status`` (``error``: no answer).
REQUESTS = "syncd_inventory_requests_total"
#: Their duration, by ``method`` (a histogram).
REQUEST_SECONDS = "syncd_inventory_request_duration_seconds"
#: How long each request waited for the rate limiter (a histogram; 0: no wait).
LIMITER_WAIT = "syncd_ratelimit_wait_seconds"

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: The histograms this module records, with their buckets (``/metrics`` reads them back).
HISTOGRAMS: Mapping[str, tuple[float, ...]] = {
    REQUEST_SECONDS: REQUEST_BUCKETS,
    LIMITER_WAIT: WAIT_BUCKETS,
}
#: A daemon worker adds its increments to the store at most this often (seconds).
FLUSH_EVERY = 5.0

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

SampleKey = tuple[str, str]


class SampleSink(Protocol):
    """Where ``flush`` adds samples (``syncd.store.Store`` fits)."""

    def add_metric_samples(self, samples: Mapping[SampleKey, float]) -> None: ...


def label_text(labels: Mapping[str, str]) -> str:
    """The stored form of a label set: canonical JSON."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def bucket_label(bound: float) -> str:
    """A bucket's ``le`` as Prometheus writes it (``0.5``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class Recorder:
    """One process's increments since its last flush (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[SampleKey, float] = {}
        self._flushed_at = time.monotonic()

    def count(self, name: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        """Add ``value`` to the counter ``name{labels}``."""
        key = (name, label_text(labels))
        with self._lock:
            self._pending[key] = self._pending.get(key, 0.0) + value

    def observe(
        self, name: str, labels: Mapping[str, str], value: float, buckets: Iterable[float]
    ) -> None:
        """One observation of the histogram ``name{labels}``: every bucket it falls in
        (cumulative, as Prometheus counts them, ``+Inf`` included) and the sum."""
        keys = [
            (f"{name}_bucket", label_text({**labels, "le": bucket_label(bound)}))
            for bound in (*buckets, float("inf"))
            if value <= bound
        ]
        total = (f"{name}_sum", label_text(labels))
        with self._lock:
            for key in keys:
                self._pending[key] = self._pending.get(key, 0.0) + 1.0
            self._pending[total] = self._pending.get(total, 0.0) + value

    def take(self) -> dict[SampleKey, float]:
        """Everything recorded since the last ``take`` (and forget it)."""
        with self._lock:
            taken, self._pending = self._pending, {}
            self._flushed_at = time.monotonic()
            return taken

    def give_back(self, samples: Mapping[SampleKey, float]) -> None:
        """Samples a flush could not store: kept for the next one."""
        with self._lock:
            for key, value in samples.items():
                self._pending[key] = self._pending.get(key, 0.0) + value

    def due(self, every: float) -> bool:
        """Whether ``every`` seconds have passed since the last ``take``."""
        with self._lock:
            return time.monotonic() - self._flushed_at >= every


#: This process's recorder.
RECORDER = Recorder()


def request(method: str, status: int | None, seconds: float) -> None:
    """An inventory API request took ``seconds`` and was answered ``status`` (``None``:
    no answer: a timeout or a dropped connection)."""
    verb = method.upper() if method.upper() in _METHODS else "other"
    code = "error" if status is None else str(status) if 100 <= status <= 599 else "other"
    RECORDER.count(REQUESTS, {"method": verb, "status": code})
    RECORDER.observe(REQUEST_SECONDS, {"method": verb}, max(seconds, 0.0), REQUEST_BUCKETS)


def limiter_wait(seconds: float) -> None:
    """A request waited ``seconds`` for the rate limiter (0: it went at once)."""
    RECORDER.observe(LIMITER_WAIT, {}, max(seconds, 0.0), WAIT_BUCKETS)


def flush(store: SampleSink, *, every: float = 0.0) -> None:
    """Add this process's increments to the store's sums (only if ``every`` seconds have
    passed since the last flush). Never raises: a store that cannot take them now gets
    them with the next flush, and the work that called this goes on."""
    if every and not RECORDER.due(every):
        return
    samples = RECORDER.take()
    if not samples:
        return
    try:
        store.add_metric_samples(samples)
    except Exception as exc:  # noqa: BLE001 - metrics must never fail a run
        RECORDER.give_back(samples)
        log.warning("metrics.flush_failed", error=type(exc).__name__)
