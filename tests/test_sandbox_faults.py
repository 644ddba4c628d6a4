"""Injected faults of the sandbox: rate limit, scripted and random failures, drops, latency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.sandbox.testing import SandboxError, SandboxProcess

LIST = "/inventory_device_serial/"


def device(serial: str, **fields: Any) -> dict[str, Any]:
    return {"serial_number": serial, "name": serial, "type": 1, "organization": 123, **fields}


def test_rate_limit_answers_429_with_retry_after(
    sandbox: SandboxProcess, sandbox_api: httpx.Client, sandbox_scoped_api: httpx.Client
) -> None:
    sandbox.set_faults(rate_limit="3/day")
    for _ in range(3):
        assert sandbox_api.get(LIST).status_code == 200
    r = sandbox_api.get(LIST)
    assert r.status_code == 429
    retry_after = r.headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert r.json() == {
        "detail": f"Request was throttled. Expected available in {retry_after} seconds."
    }
    # a throttled write is not applied
    assert sandbox_api.post(LIST, json=device("T1")).status_code == 429
    # the limit is per token
    assert sandbox_scoped_api.get(LIST).status_code == 200
    sandbox.set_faults(rate_limit=None)
    assert sandbox_api.get(f"{LIST}T1/").status_code == 404


def test_unauthenticated_requests_do_not_use_the_budget(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(rate_limit="2/day")
    for _ in range(5):
        assert httpx.get(f"{sandbox.base_url}{LIST}").status_code == 401
    assert sandbox_api.get(LIST).status_code == 200
    assert sandbox_api.get(LIST).status_code == 200
    assert sandbox_api.get(LIST).status_code == 429


def test_script_is_consumed_one_entry_per_request(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["503", "ok", "500", "502", "504"])
    first = sandbox_api.get(LIST)
    assert first.status_code == 503
    assert first.json() == {"detail": "Service temporarily unavailable, try again later."}
    assert "retry-after" not in first.headers
    assert sandbox_api.get(LIST).status_code == 200
    assert [sandbox_api.get(LIST).status_code for _ in range(3)] == [500, 502, 504]
    assert sandbox.faults()["script"] == []
    assert sandbox_api.get(LIST).status_code == 200


def test_scripted_failure_applies_nothing(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["503"])
    assert sandbox_api.post(LIST, json=device("S1")).status_code == 503
    assert sandbox_api.get(f"{LIST}S1/").status_code == 404


def test_scripted_429_and_retry_after(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.set_faults(script=["429", "503"], retry_after=7)
    throttled = sandbox_api.get(LIST)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "7"
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 7 seconds."}
    unavailable = sandbox_api.get(LIST)
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "7"


def test_scripted_429_without_retry_after_still_says_when(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["429"])
    r = sandbox_api.get(LIST)
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"] == "Request was throttled. Expected available in 1 second."


def test_drop_breaks_the_answer_and_applies_nothing(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["drop"])
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(LIST, json=device("D1"))
    assert sandbox_api.get(f"{LIST}D1/").status_code == 404
    assert sandbox.requests()[0].fault == "drop"


def test_drop_after_apply_breaks_the_answer_but_applies(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["drop_after_apply"])
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(LIST, json=device("D2"))
    assert sandbox_api.get(f"{LIST}D2/").status_code == 200
    entry = sandbox.requests()[0]
    assert entry.fault == "drop_after_apply"
    assert entry.status == 201
    assert sandbox.stats().applied_writes == 1


def test_a_client_recovers_after_a_drop(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.set_faults(script=["drop", "drop"])
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            sandbox_api.get(LIST)
    assert sandbox_api.get(LIST).status_code == 200


def test_random_failures_at_rate_one(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.set_faults(fail_rate=1.0, fail_status=502)
    statuses = {sandbox_api.get(LIST).status_code for _ in range(5)}
    assert statuses == {502}
    # the script goes first
    sandbox.set_faults(script=["ok"])
    assert sandbox_api.get(LIST).status_code == 200
    assert sandbox_api.get(LIST).status_code == 502


def test_random_drops_with_and_without_apply(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(LIST, json=device("R1"))
    sandbox.set_faults(drop_applied=True)
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(LIST, json=device("R2"))
    sandbox.set_faults(drop_rate=0.0)
    assert sandbox_api.get(f"{LIST}R1/").status_code == 404
    assert sandbox_api.get(f"{LIST}R2/").status_code == 200


def test_injected_latency_is_recorded(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.set_faults(latency_ms=40, latency_rate=1.0, script=["delay:60"])
    sandbox_api.get(LIST)
    sandbox_api.get(LIST)
    scripted, random_delay = sandbox.requests()
    assert scripted.fault == "delay"
    assert scripted.duration_ms >= 55
    assert random_delay.fault == "delay"
    assert random_delay.duration_ms >= 35


def test_faults_reach_unauthenticated_requests_too(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(script=["503"])
    assert httpx.get(f"{sandbox.base_url}{LIST}").status_code == 503


def test_reset_clears_faults(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.set_faults(fail_rate=1.0, script=["drop"], rate_limit="1/day")
    sandbox.reset()
    assert sandbox.faults() == {
        "fail_rate": 0.0,
        "fail_status": 503,
        "retry_after": None,
        "latency_ms": 0.0,
        "latency_rate": 1.0,
        "drop_rate": 0.0,
        "drop_applied": False,
        "rate_limit": None,
        "script": [],
        "hide_from_list": [],
    }
    assert [sandbox_api.get(LIST).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    "settings",
    [
        {"fail_rate": 1.5},
        {"fail_status": 200},
        {"script": ["boom"]},
        {"script": "503"},
        {"rate_limit": "often"},
        {"drop_applied": "yes"},
        {"latency_ms": -1},
        {"nonsense": 1},
    ],
)
def test_bad_fault_settings_are_refused_whole(
    sandbox: SandboxProcess, settings: dict[str, Any]
) -> None:
    with pytest.raises(SandboxError, match="400"):
        sandbox.set_faults(**({"drop_rate": 0.5} | settings))
    assert sandbox.faults()["drop_rate"] == 0.0


def test_seeded_random_faults_repeat_after_reset() -> None:
    with SandboxProcess(args=["--seed", "7", "--fail-rate", "0.5"]) as sbx, sbx.client() as api:
        first = [api.get(LIST).status_code for _ in range(20)]
        sbx.reset()
        second = [api.get(LIST).status_code for _ in range(20)]
        assert first == second
        assert set(first) == {200, 503}


def test_injected_429_says_the_retry_after_it_sends(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["429"], retry_after=0)
    r = sandbox_api.get(LIST)
    assert r.headers["retry-after"] == "0"
    assert r.json()["detail"] == "Request was throttled. Expected available in 0 seconds."


def test_a_dropped_delete_is_a_broken_answer_too(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.load([device("DEL")])
    sandbox.set_faults(script=["drop_after_apply"])
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.delete(f"{LIST}DEL/")
    assert sandbox_api.get(f"{LIST}DEL/").status_code == 404
    assert sandbox.requests()[0].status == 204


def test_a_stall_holds_the_answer_and_applies_nothing(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["stall:300"])
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(LIST, json=device("S1"))
    (entry,) = sandbox.requests()
    assert (entry.method, entry.fault) == ("POST", "stall")
    assert sandbox_api.get(f"{LIST}S1/").status_code == 404


def test_a_stall_after_apply_is_logged_applied_while_the_client_still_waits(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.set_faults(script=["stall_after_apply:5000"])
    with pytest.raises(httpx.ReadTimeout):
        sandbox_api.post(LIST, json=device("S2"), timeout=1.0)
    (entry,) = sandbox.requests()  # in the log before the answer (which never comes)
    assert (entry.status, entry.fault) == (201, "stall_after_apply")
    assert sandbox_api.get(f"{LIST}S2/").status_code == 200


def test_hidden_devices_are_left_out_of_the_listing_and_its_count(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.load([device("H1"), device("H2"), device("H3")])
    sandbox.set_faults(hide_from_list=["H2"])
    page = sandbox_api.get(LIST).json()
    assert page["count"] == 2
    assert [d["serial_number"] for d in page["results"]] == ["H1", "H3"]
    assert sandbox_api.get(f"{LIST}H2/").status_code == 200
    sandbox.reset()
    assert sandbox.faults()["hide_from_list"] == []


def test_hide_from_list_takes_only_serials(sandbox: SandboxProcess) -> None:
    with pytest.raises(SandboxError, match="hide_from_list"):
        sandbox.set_faults(hide_from_list="H1")  # type: ignore[arg-type]


def test_the_log_names_the_serial_of_each_write(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox_api.post(LIST, json=device("L/1"))
    sandbox_api.patch(f"{LIST}L%2F1/", json={"name": "x"})
    sandbox_api.get(f"{LIST}L%2F1/")
    sandbox_api.post(LIST, content=b"not json", headers={"content-type": "application/json"})
    sandbox_api.delete(f"{LIST}L%2F1/")
    assert [(r.method, r.serial) for r in sandbox.requests()] == [
        ("POST", "L/1"),
        ("PATCH", "L/1"),
        ("GET", None),
        ("POST", None),
        ("DELETE", "L/1"),
    ]
