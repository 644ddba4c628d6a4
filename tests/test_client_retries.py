"""Retries against the real sandbox: scripted 429/503/drops, ``Retry-After``, the attempt
and time budgets, and the at-most-once rules for create and delete."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import stamina

from syncd.config import RetrySettings
from syncd.errors import (
    AlreadyExistsError,
    ConnectionFailedError,
    NotFoundError,
    RateLimitedError,
    ServerUnavailableError,
)
from syncd.inventory import DeviceCreate, DevicePatch, DeviceReplace, InventoryClient
from syncd.ratelimit import LimitsRateLimiter
from syncd.sandbox.testing import SandboxProcess
from tests.client_support import FAST_RETRY, device, make_client, summary, wait_for_log

NEW = DeviceCreate(
    serial_number="NEW1", name="edge-1", type=1, organization=123, location="Lab", status=True
)


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[InventoryClient]:
    with make_client(sandbox) as client:
        yield client


def _statuses(sandbox: SandboxProcess) -> list[int]:
    return [r.status for r in sandbox.requests()]


# -- reads -----------------------------------------------------------------------------------


def test_get_survives_429_503_and_a_drop(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device("SN1")])
    sandbox.set_faults(script=["503", "429", "drop", "ok"], retry_after=0)
    assert client.get_device("SN1").name == "dev-SN1"
    assert summary(sandbox) == [
        ("GET", 503, "503"),
        ("GET", 429, "429"),
        ("GET", 200, "drop"),
        ("GET", 200, None),
    ]


def test_stamina_testing_mode_makes_default_backoff_instant(sandbox: SandboxProcess) -> None:
    """Default settings wait 0.5 s, 1 s, 2 s ...; under ``stamina.set_testing`` they do not."""
    sandbox.set_faults(script=["503", "503"])
    with stamina.set_testing(True, attempts=3), make_client(sandbox, retry=RetrySettings()) as c:
        assert c.list_devices().count == 0
    assert _statuses(sandbox) == [503, 503, 200]


def test_retry_after_is_honoured(sandbox: SandboxProcess) -> None:
    """The sandbox answers 429 with ``Retry-After: 1``; the next try comes no sooner."""
    retry = RetrySettings(attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0)
    sandbox.set_faults(script=["429"])
    begun = time.monotonic()
    with make_client(sandbox, retry=retry) as client:
        assert client.list_devices().count == 0
    assert time.monotonic() - begun >= 1.0
    first, second = sandbox.requests()
    assert (first.status, second.status) == (429, 200)
    assert second.start - first.start >= 1.0


def test_a_429_pauses_every_user_of_the_limiter(sandbox: SandboxProcess) -> None:
    """One client is told to wait; another client sharing the limiter waits too."""
    limiter = LimitsRateLimiter(100, 100, key="shared-pause")
    once = RetrySettings(attempts=1, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0)
    sandbox.set_faults(script=["429"])
    with (
        make_client(sandbox, retry=once, rate_limiter=limiter) as told,
        make_client(sandbox, retry=once, rate_limiter=limiter) as other,
    ):
        with pytest.raises(RateLimitedError) as info:
            told.list_devices()
        assert info.value.retry_after == 1
        other.list_devices()
    throttled, later = sandbox.requests()
    assert throttled.status == 429
    assert later.start - throttled.start >= 1.0


def test_retry_after_beyond_the_budget_is_returned_at_once(sandbox: SandboxProcess) -> None:
    retry = RetrySettings(attempts=5, timeout=2, wait_initial=0, wait_max=0, wait_jitter=0)
    sandbox.set_faults(script=["429"] * 5, retry_after=30)
    with make_client(sandbox, retry=retry) as client, pytest.raises(RateLimitedError) as info:
        client.list_devices()
    assert info.value.retry_after == 30
    assert _statuses(sandbox) == [429]


def test_total_time_budget_bounds_the_attempts(sandbox: SandboxProcess) -> None:
    """100 attempts allowed, but only one second: five 0.2 s waits fit, at most."""
    retry = RetrySettings(attempts=100, timeout=1, wait_initial=0.2, wait_max=0.2, wait_jitter=0)
    sandbox.set_faults(script=["503"] * 100)
    with make_client(sandbox, retry=retry) as client, pytest.raises(ServerUnavailableError):
        client.list_devices()
    assert 1 <= len(sandbox.requests()) <= 7


# -- idempotent writes -----------------------------------------------------------------------


def test_put_and_patch_are_retried(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device("SN1")])
    sandbox.set_faults(script=["drop_after_apply", "ok", "503", "ok"])
    put = client.replace_device("SN1", DeviceReplace(name="put", type=1, organization=123))
    patched = client.patch_device("SN1", DevicePatch(location="Rack 9"))
    assert (put.name, patched.name, patched.location) == ("put", "put", "Rack 9")
    assert summary(sandbox) == [
        ("PUT", 200, "drop_after_apply"),
        ("PUT", 200, None),
        ("PATCH", 503, "503"),
        ("PATCH", 200, None),
    ]


# -- create: never twice ---------------------------------------------------------------------


def test_create_after_a_drop_before_apply_looks_up_then_creates(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.set_faults(script=["drop"])
    created = client.create_device(NEW)
    assert created.location == "Lab"
    assert summary(sandbox) == [
        ("POST", 200, "drop"),
        ("GET", 404, None),
        ("POST", 201, None),
    ]


def test_create_after_a_drop_after_apply_returns_the_applied_device(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.set_faults(script=["drop_after_apply"])
    created = client.create_device(NEW)
    assert (created.serial_number, created.name, created.location) == ("NEW1", "edge-1", "Lab")
    assert summary(sandbox) == [("POST", 201, "drop_after_apply"), ("GET", 200, None)]
    assert sandbox.stats().applied_writes == 1


def test_create_after_a_503_looks_up_first(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.set_faults(script=["503"])
    client.create_device(NEW)
    assert summary(sandbox) == [("POST", 503, "503"), ("GET", 404, None), ("POST", 201, None)]


def test_create_after_a_429_retries_without_lookup(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    """A 429 is refused before processing: nothing to look up."""
    sandbox.set_faults(script=["429"], retry_after=0)
    client.create_device(NEW)
    assert summary(sandbox) == [("POST", 429, "429"), ("POST", 201, None)]


def test_create_after_an_uncertain_failure_finds_a_different_device(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load([device("NEW1", name="theirs", location="Lab", status=True)])
    sandbox.set_faults(script=["503"])
    with pytest.raises(AlreadyExistsError) as info:
        client.create_device(NEW)
    assert "different name" in str(info.value)
    assert summary(sandbox) == [("POST", 503, "503"), ("GET", 200, None)]
    assert client.get_device("NEW1").name == "theirs"


def test_create_after_a_read_timeout_creates_exactly_once(sandbox: SandboxProcess) -> None:
    """The first POST is slow: the client gives up on it, but the server applies it.
    However the race between the read-back and the slow POST goes, one device results."""
    retry = RetrySettings(attempts=4, timeout=30, wait_initial=1.0, wait_max=1.0, wait_jitter=0)
    sandbox.set_faults(script=["delay:600"])
    with make_client(sandbox, retry=retry, timeout=0.2) as client:
        created = client.create_device(NEW)
        assert (created.name, created.location) == ("edge-1", "Lab")
        assert wait_for_log(sandbox, 1, fault="delay")  # the slow POST has finished too
        logged = summary(sandbox)
        assert [d.serial_number for d in client.iter_devices()] == ["NEW1"]
    assert ("POST", 201, "delay") in logged or ("POST", 409, "delay") in logged
    assert [s for m, s, _ in logged if m == "POST"].count(201) == 1


def test_create_gives_up_after_the_budget_without_creating(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    """Every POST is dropped before it is applied; each read-back in between finds
    nothing. Four attempts: four POSTs, three read-backs, no device."""
    sandbox.set_faults(script=["drop", "ok"] * 10)
    with pytest.raises(ConnectionFailedError):
        client.create_device(NEW)
    assert summary(sandbox) == [
        ("POST", 200, "drop"),
        ("GET", 404, None),
        ("POST", 200, "drop"),
        ("GET", 404, None),
        ("POST", 200, "drop"),
        ("GET", 404, None),
        ("POST", 200, "drop"),
    ]
    assert sandbox.stats().applied_writes == 0


# -- delete: once ----------------------------------------------------------------------------


class LosesFirstDeleteAnswer(httpx.BaseTransport):
    """Real HTTP, but the answer to the first DELETE is lost on the way back (the sandbox
    cannot cut a 204, which has no body to cut)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lost = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.method == "DELETE" and not self._lost:
            self._lost = True
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def test_delete_whose_answer_was_lost_counts_a_404_retry_as_done(
    sandbox: SandboxProcess,
) -> None:
    sandbox.load([device("GONE")])
    with make_client(sandbox, transport=LosesFirstDeleteAnswer()) as client:
        client.delete_device("GONE")
    assert summary(sandbox) == [("DELETE", 204, None), ("DELETE", 404, None)]


def test_delete_after_a_read_timeout_succeeds(sandbox: SandboxProcess) -> None:
    retry = RetrySettings(attempts=4, timeout=30, wait_initial=1.0, wait_max=1.0, wait_jitter=0)
    sandbox.load([device("SLOW")])
    sandbox.set_faults(script=["delay:600"])
    with make_client(sandbox, retry=retry, timeout=0.2) as client:
        client.delete_device("SLOW")
        assert wait_for_log(sandbox, 1, fault="delay")
        logged = summary(sandbox)
        with pytest.raises(NotFoundError):
            client.get_device("SLOW")
    assert sorted(s for m, s, _ in logged if m == "DELETE") == [204, 404]


def test_delete_after_a_drop_before_apply_deletes(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load([device("DROP")])
    sandbox.set_faults(script=["drop"])
    client.delete_device("DROP")
    assert summary(sandbox) == [("DELETE", 200, "drop"), ("DELETE", 204, None)]


def test_404_after_only_a_429_is_still_not_found(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    """A 429 was not applied, so the 404 that follows is the truth: no such device."""
    sandbox.set_faults(script=["429"], retry_after=0)
    with pytest.raises(NotFoundError):
        client.delete_device("NEVER")
    assert summary(sandbox) == [("DELETE", 429, "429"), ("DELETE", 404, None)]


def test_fast_retry_settings_are_what_the_suite_assumes() -> None:
    assert FAST_RETRY.attempts == 4
    assert FAST_RETRY.wait_initial == FAST_RETRY.wait_max == 0
