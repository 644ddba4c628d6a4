"""The sandbox's control API, request log and statistics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.sandbox.testing import SandboxError, SandboxProcess

LIST = "/inventory_device_serial/"


def device(serial: str, **fields: Any) -> dict[str, Any]:
    return {"serial_number": serial, "name": serial, "type": 1, "organization": 123, **fields}


def test_reset_empties_the_session_sandbox(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox_api.post(LIST, json=device("R1"))
    sandbox.reset()
    assert sandbox_api.get(LIST).json()["count"] == 0
    assert len(sandbox.requests()) == 1  # only the GET after the reset


def test_load_stages_server_managed_state(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    total = sandbox.load(
        [
            device(
                "L1",
                status=True,
                last_status_change="2024-01-15T14:30:22Z",
                created_at="2024-01-10T09:00:00Z",
                pending_changes=True,
                ip_address="192.168.1.10",
            ),
            device("L2", pending_details={"configuration_updates": 2, "firmware_update": True}),
        ]
    )
    assert total == 2
    l1 = sandbox_api.get(f"{LIST}L1/", params={"pending": "true"}).json()
    assert l1["status"] is True
    assert l1["last_status_change"] == "2024-01-15T14:30:22Z"
    assert l1["created_at"] == "2024-01-10T09:00:00Z"
    assert l1["updated_at"] == "2024-01-10T09:00:00Z"
    assert l1["pending_changes"] is True
    assert l1["pending_details"]["configuration_updates"] == 1
    l2 = sandbox_api.get(f"{LIST}L2/", params={"pending": "true"}).json()
    assert l2["pending_details"]["firmware_update"] is True
    assert l2["pending_changes"] is True


def test_load_replaces_existing_devices(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([device("L1", name="first")])
    assert sandbox.load([device("L1", name="second"), device("L2")]) == 2
    assert sandbox_api.get(f"{LIST}L1/").json()["name"] == "second"


def test_bad_load_names_each_bad_item_and_loads_nothing(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    with pytest.raises(SandboxError) as caught:
        sandbox.load([device("OK"), device("BAD", type=99), {"name": "x"}, device("OK")])
    message = str(caught.value)
    assert '"1":{"type"' in message
    assert '"2":{' in message
    assert "Duplicate serial" in message
    assert sandbox_api.get(LIST).json()["count"] == 0


def test_state_of_a_device(sandbox: SandboxProcess) -> None:
    sandbox.load([device("A/B", status=True)])
    state = sandbox.set_state("A/B", live_status=False, pending={"configuration_updates": 4})
    assert state["live_status"] is False
    assert state["pending"]["configuration_updates"] == 4
    assert sandbox.device_state("A/B") == state
    # keys left out stay as they are
    assert sandbox.set_state("A/B", live_status=None)["pending"] == state["pending"]


def test_state_of_an_unknown_device_is_404(sandbox: SandboxProcess) -> None:
    with pytest.raises(SandboxError, match="404"):
        sandbox.set_state("NOPE", live_status=True)


def test_bad_state_is_400(sandbox: SandboxProcess) -> None:
    sandbox.load([device("S")])
    with pytest.raises(SandboxError, match="400"):
        sandbox.set_state("S", live_status="sometimes")  # type: ignore[arg-type]


def test_request_log_records_api_calls_only(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox_api.get(LIST, params={"limit": 5, "status": "true"})
    sandbox_api.post(LIST, json=device("A B"))
    sandbox_api.get(f"{LIST}A%20B/")
    sandbox_api.get(f"{LIST}NOPE/")
    httpx.get(f"{sandbox.base_url}{LIST}")
    sandbox.stats()
    log = sandbox.requests()
    assert [(e.method, e.path, e.status) for e in log] == [
        ("GET", "/api/v1/inventory_device_serial/", 200),
        ("POST", "/api/v1/inventory_device_serial/", 201),
        ("GET", "/api/v1/inventory_device_serial/A%20B/", 200),
        ("GET", "/api/v1/inventory_device_serial/NOPE/", 404),
        ("GET", "/api/v1/inventory_device_serial/", 401),
    ]
    assert log[0].query == "limit=5&status=true"
    assert all(e.duration_ms >= 0 for e in log)
    assert [e.start for e in log] == sorted(e.start for e in log)
    assert all(e.fault is None for e in log)


def test_request_log_never_holds_the_token(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox_api.get(LIST)
    raw = httpx.get(f"{sandbox.root_url}/_sandbox/requests").text
    for token in sandbox.tokens:
        assert token.value.get_secret_value() not in raw
    assert "authorization" not in raw.lower()


def test_stats_count_requests(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=device("S1"))
    sandbox_api.post(LIST, json=device("S1"))
    sandbox_api.patch(f"{LIST}S1/", json={"name": "x"})
    sandbox_api.delete(f"{LIST}S1/")
    sandbox_api.get(LIST)
    stats = sandbox.stats()
    assert stats.total == 5
    assert stats.by_method == {"POST": 2, "PATCH": 1, "DELETE": 1, "GET": 1}
    assert stats.by_status == {"200": 2, "201": 1, "204": 1, "409": 1}
    assert stats.writes == 4
    assert stats.applied_writes == 3
    assert 1 <= stats.peak_per_second <= 5


def test_clearing_the_log_zeroes_the_stats(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox_api.get(LIST)
    sandbox.clear_requests()
    assert sandbox.requests() == []
    assert sandbox.stats().total == 0
    assert sandbox.stats().peak_per_second == 0


def test_control_paths_answer_404_and_405(sandbox: SandboxProcess) -> None:
    assert httpx.get(f"{sandbox.root_url}/_sandbox/nothing").status_code == 404
    assert httpx.get(f"{sandbox.root_url}/_sandbox/reset").status_code == 405
    health = httpx.get(f"{sandbox.root_url}/_sandbox/health")
    assert health.json() == {"ok": True, "devices": 0}
