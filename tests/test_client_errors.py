"""Every failure the sandbox can produce, mapped to the right exception, with the right
number of attempts (read from the sandbox's request log)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from syncd.config import RetrySettings
from syncd.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConnectionFailedError,
    FatalError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RejectedError,
    RetriableError,
    ServerUnavailableError,
    TimeoutError_,
    ValidationRejectedError,
)
from syncd.inventory import DeviceCreate, DevicePatch, DeviceReplace, InventoryClient
from syncd.inventory.retrying import RetryBudget
from syncd.sandbox.testing import SandboxProcess
from tests.client_support import FAST_RETRY, device, make_client, summary, wait_for_log

LIST = "/api/v1/inventory_device_serial/"


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[InventoryClient]:
    with make_client(sandbox) as client:
        yield client


# -- rejected: never retried -----------------------------------------------------------------


def test_400_carries_the_field_errors(sandbox: SandboxProcess, client: InventoryClient) -> None:
    with pytest.raises(ValidationRejectedError) as info:
        client.create_device(
            DeviceCreate(
                serial_number="BAD1", name="x", type=999, organization=123, ip_address="nope"
            )
        )
    error = info.value
    assert set(error.field_errors) == {"type", "ip_address"}
    assert any("999" in m for m in error.field_errors["type"])
    assert str(error).startswith(f"POST {LIST} -> 400: ")
    assert error.status_code == 400
    assert summary(sandbox) == [("POST", 400, None)]


def test_409_on_the_first_try_is_already_exists(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load([device("DUP1")])
    with pytest.raises(AlreadyExistsError) as info:
        client.create_device(DeviceCreate(serial_number="DUP1", name="x", type=1, organization=123))
    assert f"POST {LIST} -> 409" in str(info.value)
    assert "already exists" in str(info.value)
    assert summary(sandbox) == [("POST", 409, None)]  # no read-back: nothing was uncertain


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_device("NOPE"),
        lambda c: c.replace_device("NOPE", DeviceReplace(name="n", type=1, organization=123)),
        lambda c: c.patch_device("NOPE", DevicePatch(name="n")),
        lambda c: c.delete_device("NOPE"),
    ],
    ids=["get", "put", "patch", "delete"],
)
def test_404_is_not_found_and_not_retried(
    sandbox: SandboxProcess, client: InventoryClient, call: object
) -> None:
    with pytest.raises(NotFoundError) as info:
        call(client)  # type: ignore[operator]
    assert info.value.status_code == 404
    assert "/api/v1/inventory_device_serial/NOPE/ -> 404: Not found." in str(info.value)
    assert len(sandbox.requests()) == 1


def test_401_bad_token_is_fatal_and_not_retried(sandbox: SandboxProcess) -> None:
    with (
        make_client(sandbox, token=SecretStr("not-a-known-token")) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.list_devices()
    assert isinstance(info.value, FatalError)
    assert info.value.status_code == 401
    assert "Invalid token." in str(info.value)
    assert summary(sandbox) == [("GET", 401, None)]


def test_403_outside_the_tokens_organizations(sandbox: SandboxProcess) -> None:
    sandbox.load([device("OTHER", organization=1)])
    with make_client(sandbox, token=sandbox.tokens[1].value) as scoped:
        with pytest.raises(PermissionDeniedError) as listing:
            scoped.list_devices(organization=1)
        with pytest.raises(PermissionDeniedError):
            scoped.delete_device("OTHER")
    assert listing.value.status_code == 403
    assert f"GET {LIST}?organization=1 -> 403" in str(listing.value)
    assert [s for _, s, _ in summary(sandbox)] == [403, 403]


def test_500_is_a_protocol_error_and_not_retried(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.set_faults(script=["500"])
    with pytest.raises(ProtocolError) as info:
        client.list_devices()
    assert f"GET {LIST} -> 500" in str(info.value)
    assert info.value.status_code == 500
    assert len(sandbox.requests()) == 1


# -- retriable: retried until the budget is spent --------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("429", RateLimitedError),
        ("502", ServerUnavailableError),
        ("503", ServerUnavailableError),
        ("504", ServerUnavailableError),
    ],
)
def test_retriable_status_fails_after_the_attempt_budget(
    sandbox: SandboxProcess,
    client: InventoryClient,
    status: str,
    error: type[RetriableError],
) -> None:
    sandbox.set_faults(script=[status] * 10, retry_after=0)
    with pytest.raises(error) as info:
        client.get_device("ANY")
    assert f"-> {status}" in str(info.value)
    assert info.value.retry_after == 0
    assert [s for _, s, _ in summary(sandbox)] == [int(status)] * FAST_RETRY.attempts


def test_503_without_retry_after_has_none(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.set_faults(script=["503"] * 10)
    with pytest.raises(ServerUnavailableError) as info:
        client.list_devices()
    assert info.value.retry_after is None
    assert "try again later" in str(info.value)


def test_dropped_connections_fail_after_the_budget(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.set_faults(script=["drop"] * 10)
    with pytest.raises(ConnectionFailedError) as info:
        client.list_devices()
    assert f"GET {LIST}: connection dropped" in str(info.value)
    assert len(sandbox.requests()) == FAST_RETRY.attempts


def test_read_timeout_fails_after_the_budget(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(script=["delay:800"] * 2)
    retry = RetrySettings(attempts=2, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0)
    with (
        make_client(sandbox, retry=retry, timeout=0.3) as client,
        pytest.raises(TimeoutError_) as info,
    ):
        client.get_device("SLOW")
    assert "GET /api/v1/inventory_device_serial/SLOW/: read timed out" in str(info.value)
    # Both tries reached the server; let them finish so they cannot leak into the next test.
    assert wait_for_log(sandbox, 2) == [("GET", 404, "delay")] * 2


def test_refused_connection_is_connection_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    with (
        InventoryClient(
            f"http://127.0.0.1:{port}/api/v1", SecretStr("t0ken-x"), retry=FAST_RETRY
        ) as client,
        pytest.raises(ConnectionFailedError, match="could not connect") as info,
    ):
        client.list_devices()
    assert f"could not connect to 127.0.0.1:{port}" in str(info.value)
    # Nothing listens on this machine's port: the call gives up at once, not after its tries.
    assert info.value.nothing_listens
    assert RetryBudget(RetrySettings(attempts=6))(info.value) is False
    assert RetryBudget(RetrySettings(attempts=6))(ConnectionFailedError("dropped")) is not False


def test_the_exception_tree_groups_by_disposition() -> None:
    """Callers branch on the base classes; keep the mapping inside them."""
    assert issubclass(RateLimitedError, RetriableError)
    assert issubclass(NotFoundError, RejectedError)
    assert issubclass(ProtocolError, FatalError)
