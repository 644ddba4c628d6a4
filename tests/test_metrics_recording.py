"""Where the API numbers are measured (the client, the rate limiter), how a process's
increments reach the store, and how ``/metrics`` turns rows and sums into families."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from freezegun import freeze_time
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from syncd import metrics
from syncd.api.metrics import PageCache, families, render
from syncd.config import RetrySettings
from syncd.errors import ConnectionFailedError, NotFoundError, ValidationRejectedError
from syncd.inventory import InventoryClient
from syncd.ratelimit import LimitsRateLimiter
from syncd.store import Store
from syncd.store.metrics import Figures
from tests import pg

db_url = pg.db_url

WAIT = "syncd_ratelimit_wait_seconds"
SECONDS = "syncd_inventory_request_duration_seconds"


@pytest.fixture
def recorder() -> Iterator[metrics.Recorder]:
    """This process's recorder, emptied of what earlier tests recorded."""
    metrics.RECORDER.take()
    yield metrics.RECORDER
    metrics.RECORDER.take()


def labels(**given: str) -> str:
    return json.dumps(given, sort_keys=True, separators=(",", ":"))


def test_the_rate_limiter_records_each_wait(recorder: metrics.Recorder) -> None:
    with freeze_time("2026-12-07 12:00:00") as frozen:

        def sleep(seconds: float) -> None:  # moves the frozen clock instead
            frozen.tick(seconds)

        limiter = LimitsRateLimiter(100, 100, key="metrics-wait", sleep=sleep)
        limiter.acquire()  # room: no wait
        limiter.pause(0.3)
        limiter.acquire()  # waits the pause out
    taken = recorder.take()

    assert taken[(f"{WAIT}_bucket", labels(le="+Inf"))] == 2
    assert taken[(f"{WAIT}_bucket", labels(le="0.0"))] == 1
    assert taken[(f"{WAIT}_sum", labels())] == pytest.approx(0.3, abs=0.002)


def test_the_client_counts_each_request_by_method_and_status_never_by_serial(
    recorder: metrics.Recorder,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            raise httpx.ConnectError("refused", request=request)
        if request.method == "POST":
            return httpx.Response(400, json={"name": ["This field is required."]})
        return httpx.Response(404, json={"detail": "Not found."})

    client = InventoryClient(
        "http://inventory.invalid/api/v1",
        SecretStr("token-token-token"),
        retry=RetrySettings(attempts=1),
        transport=httpx.MockTransport(answer),
    )
    with client:
        with pytest.raises(NotFoundError):
            client.get_device("SERIAL-SECRET-1")
        with pytest.raises(ValidationRejectedError):
            client.create_device(
                {"serial_number": "SERIAL-SECRET-2", "name": "x", "type": 1, "organization": 1}
            )
        with pytest.raises(ConnectionFailedError):
            client.delete_device("SERIAL-SECRET-3")
    taken = recorder.take()

    counted = {
        tuple(json.loads(text).values()): value
        for (name, text), value in taken.items()
        if name == metrics.REQUESTS
    }
    assert counted == {("GET", "404"): 1, ("POST", "400"): 1, ("DELETE", "error"): 1}
    for method in ("GET", "POST", "DELETE"):
        assert taken[(f"{SECONDS}_bucket", labels(le="+Inf", method=method))] == 1
    assert not any("SERIAL" in text or "invalid" in text for _, text in taken)


def test_increments_of_several_processes_add_up_in_the_store(
    db_url: str, recorder: metrics.Recorder
) -> None:
    with Store.open(db_url) as store:
        for seconds in (0.02, 0.3):  # two processes, one request each
            metrics.request("GET", 200, seconds)
            metrics.flush(store)
        assert recorder.take() == {}, "flushed: nothing left in memory"
        text = render(store).decode()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    get = ("method", "GET")
    assert samples[("syncd_inventory_requests_total", (get, ("status", "200")))] == 2
    assert samples[(f"{SECONDS}_bucket", (("le", "0.01"), get))] == 0
    assert samples[(f"{SECONDS}_bucket", (("le", "0.025"), get))] == 1
    assert samples[(f"{SECONDS}_bucket", (("le", "0.5"), get))] == 2
    assert samples[(f"{SECONDS}_count", (get,))] == 2
    assert samples[(f"{SECONDS}_sum", (get,))] == pytest.approx(0.32)


class _DownStore:
    def add_metric_samples(self, samples: Mapping[tuple[str, str], float]) -> None:
        raise OSError("the store is down")


class _Sink:
    def __init__(self) -> None:
        self.got: dict[tuple[str, str], float] = {}

    def add_metric_samples(self, samples: Mapping[tuple[str, str], float]) -> None:
        self.got.update(samples)


def test_a_flush_the_store_refuses_keeps_the_increments_for_the_next(
    recorder: metrics.Recorder,
) -> None:
    metrics.request("PATCH", 200, 0.1)
    metrics.flush(_DownStore())  # never raises: a run goes on
    metrics.request("PATCH", 200, 0.1)
    sink = _Sink()
    metrics.flush(sink)

    assert sink.got[(metrics.REQUESTS, labels(method="PATCH", status="200"))] == 2


def test_the_oldest_waiting_change_is_aged_against_the_time_given() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    figures = Figures(
        runs={("procurement", "held"): 1, ("(all)", "done"): 4},
        changes={("create", "pending"): 3, ("delete", "held"): 2, ("update", "applied"): 5},
        oldest_waiting=now - timedelta(seconds=90),
        drift={"missing": 3},
    )

    found = {family.name: family.samples for family in families(figures, {}, now)}

    assert found["syncd_outbox_oldest_age_seconds"][0].value == 90
    assert [(s.labels["status"], s.value) for s in found["syncd_outbox_depth"]] == [
        ("pending", 3),
        ("dispatched", 0),
        ("applying", 0),
    ]
    assert found["syncd_held_runs"][0].value == 1
    assert found["syncd_held_changes"][0].value == 2
    assert {s.labels["kind"]: s.value for s in found["syncd_drift_devices"]} == {
        "missing": 3,
        "orphans": 0,
        "conflicts": 0,
        "unplanned": 0,
    }


def test_a_page_is_counted_once_for_scrapes_within_its_time() -> None:
    clock = [100.0]
    made: list[bytes] = []

    def make() -> bytes:
        made.append(f"page {len(made) + 1}".encode())
        return made[-1]

    cache = PageCache(ttl=5.0, clock=lambda: clock[0])
    first = cache.get(make)
    clock[0] += 4.9
    again = cache.get(make)
    clock[0] += 0.2
    later = cache.get(make)

    assert (first, again, later) == (b"page 1", b"page 1", b"page 2")
    assert len(made) == 2
