"""``GET /metrics``: syncd in the Prometheus text format (a viewer token, as Bearer).

Everything is read from the store when scraped (a page is served again for up to
``CACHE_SECONDS``), so the numbers are those of every syncd process, on every machine,
whichever ``syncd serve`` is asked:

- counted from the store's rows (gauges, since rows change status and can be pruned:
  a count that can go down is not a Prometheus counter): ``syncd_runs`` by connector
  and status, ``syncd_changes`` by operation and status, ``syncd_outbox_depth`` by
  status, ``syncd_outbox_oldest_age_seconds``, ``syncd_held_runs`` and
  ``syncd_held_changes`` (what the safety gates hold), ``syncd_drift_devices`` by kind;
- measured where they happen and added up in the store (``syncd.metrics``): the
  inventory API's requests by method and status (a counter) and their duration (a
  histogram), and the rate limiter's wait (a histogram).

``families`` is the pure part: figures and samples in, metric families out.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from syncd import metrics
from syncd.api.app import ApiContext, context
from syncd.api.auth import viewer
from syncd.store import Store
from syncd.store.metrics import WAITING, Figures

router = APIRouter(dependencies=[Depends(viewer)])

Context = Annotated[ApiContext, Depends(context)]

#: The drift kinds, always shown (0 when there is none).
DRIFT_KINDS = ("missing", "orphans", "conflicts", "unplanned")


#: A page is served again for this long (seconds) instead of counted again.
CACHE_SECONDS = 5.0


class PageCache:
    """The last page, served again for ``ttl`` seconds, and counted by one thread at a
    time: two Prometheus servers scraping together (or one retrying) cost the store one
    count, and scrapes never pile up behind a slow one (counting a million changes
    takes a second or two on SQLite)."""

    def __init__(self, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._page: bytes | None = None
        self._made_at = 0.0

    def get(self, make: Callable[[], bytes]) -> bytes:
        """The cached page while fresh, else ``make()``'s."""
        with self._lock:
            if self._page is not None and self._clock() - self._made_at < self._ttl:
                return self._page
            self._page = make()
            self._made_at = self._clock()
            return self._page


@router.get("/metrics")
async def metrics_page(request: Request, ctx: Context) -> Response:
    """Every metric, counted or summed from the store (at most ``CACHE_SECONDS`` ago)."""
    state = request.app.state
    if getattr(state, "metrics_cache", None) is None:
        state.metrics_cache = PageCache()
    cache: PageCache = state.metrics_cache
    text = await run_in_threadpool(cache.get, lambda: render(ctx.store))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


def render(store: Store, now: datetime | None = None) -> bytes:
    """The Prometheus text of ``store``'s figures and samples."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store, now))
    return generate_latest(registry)


class _StoreCollector(Collector):
    def __init__(self, store: Store, now: datetime | None) -> None:
        self._store = store
        self._now = now

    def collect(self) -> Iterator[Metric]:
        figures = self._store.metric_figures()
        samples = self._store.metric_samples()
        yield from families(figures, samples, self._now or datetime.now(UTC))


def families(
    figures: Figures, samples: Mapping[tuple[str, str], float], now: datetime
) -> Iterator[Metric]:
    """The metric families of ``figures`` (counted from rows) and ``samples`` (summed)."""
    yield from _counted(figures, now)
    yield from _summed(samples)


def _counted(figures: Figures, now: datetime) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "syncd_runs",
        "Runs recorded in the store, by connector and status",
        labels=["connector", "status"],
    )
    for (connector, status), count in sorted(figures.runs.items()):
        runs.add_metric([connector, status], count)
    yield runs
    changes = GaugeMetricFamily(
        "syncd_changes",
        "Changes recorded in the store (the audit log), by operation and status",
        labels=["operation", "status"],
    )
    by_status: dict[str, int] = {}
    for (operation, status), count in sorted(figures.changes.items()):
        changes.add_metric([operation, status], count)
        by_status[status] = by_status.get(status, 0) + count
    yield changes
    depth = GaugeMetricFamily(
        "syncd_outbox_depth",
        "Changes on their way to the inventory API, by status",
        labels=["status"],
    )
    for status in WAITING:
        depth.add_metric([status], by_status.get(status, 0))
    yield depth
    oldest = figures.oldest_waiting
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    yield GaugeMetricFamily(
        "syncd_outbox_oldest_age_seconds",
        "Age of the oldest change still on its way to the API (0: none waits)",
        value=age,
    )
    held_runs = sum(count for (_, status), count in figures.runs.items() if status == "held")
    yield GaugeMetricFamily(
        "syncd_held_runs", "Plans a safety gate holds for approval", value=held_runs
    )
    yield GaugeMetricFamily(
        "syncd_held_changes",
        "Changes of the plans a safety gate holds",
        value=by_status.get("held", 0),
    )
    drift = GaugeMetricFamily(
        "syncd_drift_devices",
        "Devices where the inventory and the sources differ, by kind: missing (a source "
        "wants it, the inventory lacks it), orphans (owned, no source wants it, waiting "
        "out its grace), conflicts (a hand edit reported, not written over), unplanned "
        "(changed since last planned)",
        labels=["kind"],
    )
    for kind in DRIFT_KINDS:
        drift.add_metric([kind], figures.drift.get(kind, 0))
    yield drift


def _summed(samples: Mapping[tuple[str, str], float]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        metrics.REQUESTS,
        "Requests to the inventory API, by method and status (error: no answer)",
        labels=["method", "status"],
    )
    for labels, value in _series(samples, metrics.REQUESTS):
        requests.add_metric([labels.get("method", ""), labels.get("status", "")], value)
    yield requests
    yield _histogram(
        samples,
        metrics.REQUEST_SECONDS,
        "Duration of the requests to the inventory API, by method",
        ["method"],
    )
    yield _histogram(
        samples,
        metrics.LIMITER_WAIT,
        "Time each request to the inventory API waited for the rate limiter",
        [],
    )


def _series(
    samples: Mapping[tuple[str, str], float], name: str
) -> Iterator[tuple[dict[str, str], float]]:
    for (sample, labels), value in sorted(samples.items()):
        if sample == name:
            yield json.loads(labels), value


def _histogram(
    samples: Mapping[tuple[str, str], float], name: str, doc: str, label_names: list[str]
) -> HistogramMetricFamily:
    """A histogram from its stored cumulative buckets (a bucket no observation reached
    has no row: it counts 0) and sum."""
    family = HistogramMetricFamily(name, doc, labels=label_names)
    buckets: dict[tuple[str, ...], dict[str, float]] = {}
    for labels, value in _series(samples, f"{name}_bucket"):
        le = labels.pop("le", "+Inf")
        key = tuple(labels.get(n, "") for n in label_names)
        buckets.setdefault(key, {})[le] = value
    sums = {
        tuple(labels.get(n, "") for n in label_names): value
        for labels, value in _series(samples, f"{name}_sum")
    }
    bounds = [metrics.bucket_label(b) for b in (*metrics.HISTOGRAMS[name], float("inf"))]
    for key, counts in sorted(buckets.items()):
        filled = [(le, counts.get(le, 0.0)) for le in bounds]
        family.add_metric(list(key), filled, sum_value=sums.get(key, 0.0))
    return family
