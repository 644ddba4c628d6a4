"""The sandbox's list endpoint: paging, links, order and every filter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from syncd.sandbox.testing import SandboxProcess

LIST = "/inventory_device_serial/"


def device(serial: str, **fields: Any) -> dict[str, Any]:
    return {"serial_number": serial, "name": f"n-{serial}", "type": 1, "organization": 1, **fields}


def serials(page: dict[str, Any]) -> list[str]:
    return [d["serial_number"] for d in page["results"]]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


@pytest.fixture
def hundred_fifty(sandbox: SandboxProcess) -> list[str]:
    """150 devices, loaded in reverse order; their serials sorted."""
    names = [f"D{i:04d}" for i in range(150)]
    sandbox.load([device(s) for s in reversed(names)])
    return names


def test_empty_store(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.get(LIST)
    assert r.status_code == 200
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_default_limit_is_20_and_order_is_by_serial(
    sandbox_api: httpx.Client, hundred_fifty: list[str], sandbox: SandboxProcess
) -> None:
    page = sandbox_api.get(LIST).json()
    assert page["count"] == 150
    assert serials(page) == hundred_fifty[:20]
    assert page["previous"] is None
    assert page["next"] == f"{sandbox.base_url}{LIST}?limit=20&offset=20"


@pytest.mark.parametrize(
    ("limit", "size"),
    [("100", 100), ("101", 100), ("1000", 100), ("0", 20), ("-5", 20), ("abc", 20), ("7", 7)],
)
def test_limit_is_clamped_or_defaulted(
    sandbox_api: httpx.Client, hundred_fifty: list[str], limit: str, size: int
) -> None:
    page = sandbox_api.get(LIST, params={"limit": limit}).json()
    assert len(page["results"]) == size
    assert query_of(page["next"])["limit"] == [str(size)]


@pytest.mark.parametrize(("offset", "first"), [("-3", "D0000"), ("x", "D0000"), ("10", "D0010")])
def test_bad_offset_means_zero(
    sandbox_api: httpx.Client, hundred_fifty: list[str], offset: str, first: str
) -> None:
    page = sandbox_api.get(LIST, params={"offset": offset, "limit": 5}).json()
    assert serials(page)[0] == first


def test_walking_next_links_sees_every_device_once(
    sandbox_api: httpx.Client, hundred_fifty: list[str]
) -> None:
    seen: list[str] = []
    url: str | None = f"{LIST}?limit=25"
    pages = 0
    while url is not None:
        page = sandbox_api.get(url).json()
        seen.extend(serials(page))
        url = page["next"]
        pages += 1
    assert pages == 6
    assert seen == hundred_fifty


def test_walking_previous_links_back(sandbox_api: httpx.Client, hundred_fifty: list[str]) -> None:
    last = sandbox_api.get(LIST, params={"limit": 40, "offset": 120}).json()
    assert last["next"] is None
    assert serials(last) == hundred_fifty[120:]
    seen = serials(last)
    url = last["previous"]
    while url is not None:
        page = sandbox_api.get(url).json()
        seen = serials(page) + seen
        url = page["previous"]
    assert seen == hundred_fifty


def test_previous_link_drops_offset_at_the_start(
    sandbox_api: httpx.Client, hundred_fifty: list[str], sandbox: SandboxProcess
) -> None:
    page = sandbox_api.get(LIST, params={"limit": 10, "offset": 5, "type": 1}).json()
    assert page["previous"] == f"{sandbox.base_url}{LIST}?limit=10&type=1"
    assert page["next"] == f"{sandbox.base_url}{LIST}?limit=10&offset=15&type=1"
    page = sandbox_api.get(LIST, params={"limit": 10, "offset": 30}).json()
    assert query_of(page["previous"]) == {"limit": ["10"], "offset": ["20"]}


def test_links_keep_other_query_parameters(
    sandbox_api: httpx.Client, hundred_fifty: list[str]
) -> None:
    page = sandbox_api.get(
        LIST, params={"status": "false", "pending": "true", "limit": 2, "foo": "bar baz"}
    ).json()
    assert page["count"] == 150
    assert query_of(page["next"]) == {
        "foo": ["bar baz"],
        "limit": ["2"],
        "offset": ["2"],
        "pending": ["true"],
        "status": ["false"],
    }


def test_offset_past_the_end(sandbox_api: httpx.Client, hundred_fifty: list[str]) -> None:
    page = sandbox_api.get(LIST, params={"limit": 10, "offset": 500}).json()
    assert page["count"] == 150
    assert page["results"] == []
    assert page["next"] is None
    assert query_of(page["previous"])["offset"] == ["490"]


def test_a_new_device_lands_in_serial_order(
    sandbox_api: httpx.Client, hundred_fifty: list[str]
) -> None:
    sandbox_api.post(LIST, json=device("D0007a"))
    page = sandbox_api.get(LIST, params={"limit": 10}).json()
    assert serials(page)[7:9] == ["D0007", "D0007a"]


# -- filters ----------------------------------------------------------------------------


@pytest.fixture
def mixed(sandbox: SandboxProcess) -> None:
    sandbox.load(
        [
            device("UP-1", status=True, type=1, organization=123),
            device("UP-2", status=True, type=3, organization=1),
            device("DOWN-1", status=False, type=3, organization=123),
            device("DOWN-2", status=False, type=5, organization=2),
            device("NEVER", type=5, organization=2),
        ]
    )


@pytest.mark.parametrize("spelling", ["1", "true", "True"])
def test_status_up_spellings(sandbox_api: httpx.Client, mixed: None, spelling: str) -> None:
    page = sandbox_api.get(LIST, params={"status": spelling}).json()
    assert serials(page) == ["UP-1", "UP-2"]


@pytest.mark.parametrize("spelling", ["0", "false", "False"])
def test_status_down_spellings(sandbox_api: httpx.Client, mixed: None, spelling: str) -> None:
    page = sandbox_api.get(LIST, params={"status": spelling}).json()
    assert serials(page) == ["DOWN-1", "DOWN-2", "NEVER"]


@pytest.mark.parametrize("spelling", ["yes", "TRUE", "2", "up", "on"])
def test_other_status_values_are_400(sandbox_api: httpx.Client, mixed: None, spelling: str) -> None:
    r = sandbox_api.get(LIST, params={"status": spelling})
    assert r.status_code == 400
    assert list(r.json()) == ["status"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("status", "Select a valid choice.  is not one of the available choices."),
        ("type", "Enter a whole number."),
        ("organization", "Enter a whole number."),
        ("last_status_change_from", "Enter a valid date/time."),
        ("pending", "Select a valid choice.  is not one of the available choices."),
        ("update_status", "Select a valid choice.  is not one of the available choices."),
    ],
)
def test_empty_filter_value_is_400(
    sandbox_api: httpx.Client, mixed: None, name: str, message: str
) -> None:
    # "anything else -> 400": an empty value is not one of the accepted ones, and a
    # client that sends one by mistake must not silently get every device back
    r = sandbox_api.get(LIST, params={name: ""})
    assert r.status_code == 400
    assert r.json() == {name: [message]}


def test_empty_limit_and_offset_fall_back_to_defaults(
    sandbox_api: httpx.Client, mixed: None
) -> None:
    page = sandbox_api.get(LIST, params={"limit": "", "offset": ""}).json()
    assert page["count"] == 5
    assert len(page["results"]) == 5


def test_type_and_organization_filters(sandbox_api: httpx.Client, mixed: None) -> None:
    assert serials(sandbox_api.get(LIST, params={"type": 3}).json()) == ["DOWN-1", "UP-2"]
    assert serials(sandbox_api.get(LIST, params={"organization": 123}).json()) == [
        "DOWN-1",
        "UP-1",
    ]
    both = sandbox_api.get(LIST, params={"type": 3, "organization": 123, "status": "0"}).json()
    assert serials(both) == ["DOWN-1"]
    assert sandbox_api.get(LIST, params={"type": 42}).json()["count"] == 0


@pytest.mark.parametrize("name", ["type", "organization"])
def test_non_integer_ids_are_400(sandbox_api: httpx.Client, mixed: None, name: str) -> None:
    r = sandbox_api.get(LIST, params={name: "router"})
    assert r.status_code == 400
    assert r.json() == {name: ["Enter a whole number."]}


def test_every_bad_parameter_is_named(sandbox_api: httpx.Client, mixed: None) -> None:
    r = sandbox_api.get(
        LIST,
        params={
            "type": "x",
            "organization": "y",
            "status": "z",
            "last_status_change_from": "yesterday",
            "pending": "maybe",
            "update_status": "please",
        },
    )
    assert r.status_code == 400
    assert set(r.json()) == {
        "type",
        "organization",
        "status",
        "last_status_change_from",
        "pending",
        "update_status",
    }


@pytest.fixture
def dated(sandbox: SandboxProcess) -> None:
    sandbox.load(
        [
            device("OLD", status=True, last_status_change="1999-12-31T23:59:59Z"),
            device("EXACT", status=True, last_status_change="2000-01-01T00:01:00Z"),
            device("LATER", status=False, last_status_change="2000-01-01T00:01:00.5+00:00"),
            device("NEW", status=True, last_status_change="2024-01-15T14:30:22Z"),
            device("NONE"),
        ]
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2000-01-01", ["EXACT", "LATER", "NEW"]),
        ("2000-01-01 00:01:00", ["EXACT", "LATER", "NEW"]),
        ("2000-01-01T00:01:00", ["EXACT", "LATER", "NEW"]),
        ("2000-01-01 00:01:00+00:00", ["EXACT", "LATER", "NEW"]),
        ("2000-01-01T00:01:00+00:00", ["EXACT", "LATER", "NEW"]),
        ("2000-01-01T00:01:00Z", ["EXACT", "LATER", "NEW"]),
        ("2000-01-01T00:01:01", ["NEW"]),
        ("2000-01-01T01:01:00+01:00", ["EXACT", "LATER", "NEW"]),
        ("1999-12-31", ["EXACT", "LATER", "NEW", "OLD"]),
        ("2030-01-01", []),
    ],
)
def test_last_status_change_from(
    sandbox_api: httpx.Client, dated: None, value: str, expected: list[str]
) -> None:
    page = sandbox_api.get(LIST, params={"last_status_change_from": value}).json()
    assert serials(page) == expected


def test_unencoded_plus_in_the_offset_still_works(sandbox_api: httpx.Client, dated: None) -> None:
    # a "+" typed into a URL by hand arrives as a space
    r = sandbox_api.get(f"{LIST}?last_status_change_from=2000-01-01T00:01:00+00:00")
    assert serials(r.json()) == ["EXACT", "LATER", "NEW"]


@pytest.mark.parametrize("value", ["2000-13-01", "01/01/2000", "2000-01-01T25:00", "now"])
def test_bad_datetime_is_400(sandbox_api: httpx.Client, dated: None, value: str) -> None:
    r = sandbox_api.get(LIST, params={"last_status_change_from": value})
    assert r.status_code == 400
    assert r.json() == {"last_status_change_from": ["Enter a valid date/time."]}


def test_date_filter_combines_with_status(sandbox_api: httpx.Client, dated: None) -> None:
    page = sandbox_api.get(
        LIST, params={"last_status_change_from": "2000-01-01", "status": "true"}
    ).json()
    assert serials(page) == ["EXACT", "NEW"]


def test_datetimes_are_utc_with_z(sandbox_api: httpx.Client, dated: None) -> None:
    page = sandbox_api.get(LIST).json()
    by_serial = {d["serial_number"]: d for d in page["results"]}
    assert by_serial["NEW"]["last_status_change"] == "2024-01-15T14:30:22Z"
    assert by_serial["LATER"]["last_status_change"] == "2000-01-01T00:01:00.500000Z"
    assert by_serial["NONE"]["last_status_change"] is None


# -- pending and update_status ----------------------------------------------------------


def test_pending_state_and_details(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([device("P1"), device("P2")])
    sandbox.set_state(
        "P1",
        pending={
            "configuration_updates": 3,
            "firmware_update": False,
            "last_pending_change": "2024-01-16T08:45:00Z",
        },
    )
    page = sandbox_api.get(LIST, params={"pending": "true"}).json()
    assert [(d["serial_number"], d["pending_changes"]) for d in page["results"]] == [
        ("P1", True),
        ("P2", False),
    ]
    assert all("pending_details" not in d for d in page["results"])
    detail = sandbox_api.get(f"{LIST}P1/", params={"pending": "true"}).json()
    assert detail["pending_details"] == {
        "configuration_updates": 3,
        "firmware_update": False,
        "last_pending_change": "2024-01-16T08:45:00Z",
    }
    for flag in ("false", "0", None):
        params = {"pending": flag} if flag else {}
        assert "pending_details" not in sandbox_api.get(f"{LIST}P1/", params=params).json()
    sandbox.set_state("P1", pending=None)
    assert sandbox_api.get(f"{LIST}P1/").json()["pending_changes"] is False


def test_bad_pending_on_detail_is_400(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([device("P1")])
    r = sandbox_api.get(f"{LIST}P1/", params={"pending": "sure", "update_status": "ok"})
    assert r.status_code == 400
    assert set(r.json()) == {"pending", "update_status"}
    r = sandbox_api.get(f"{LIST}P1/", params={"pending": ""})
    assert r.status_code == 400
    assert list(r.json()) == ["pending"]


def test_update_status_applies_the_live_status(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.load([device("LIVE", status=True, last_status_change="2024-01-01T00:00:00Z")])
    sandbox.set_state("LIVE", live_status=False)
    plain = sandbox_api.get(f"{LIST}LIVE/").json()
    assert plain["status"] is True  # no check asked: the stored status
    before = datetime.now(UTC)
    checked = sandbox_api.get(f"{LIST}LIVE/", params={"update_status": "true"}).json()
    assert checked["status"] is False
    assert datetime.fromisoformat(checked["last_status_change"]) >= before
    # the flip is stored: later reads agree without a check
    assert sandbox_api.get(f"{LIST}LIVE/").json()["status"] is False


def test_update_status_on_the_list_flips_before_filtering(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.load([device("A", status=True), device("B", status=True), device("C")])
    sandbox.set_state("B", live_status=False)
    sandbox.set_state("C", live_status=True)
    assert serials(sandbox_api.get(LIST, params={"status": "false"}).json()) == ["C"]
    page = sandbox_api.get(LIST, params={"status": "false", "update_status": "True"}).json()
    assert serials(page) == ["B"]


def test_update_status_is_slow(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([device("A")])
    sandbox.clear_requests()
    sandbox_api.get(LIST, params={"update_status": "1"})
    sandbox_api.get(LIST)
    checked, plain = sandbox.requests()
    # the session sandbox runs with --live-check-delay 0.05
    assert checked.duration_ms >= 45
    assert checked.query == "update_status=1"
    assert plain.query == ""


def test_filtered_paging_is_stable_while_nothing_changes(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    sandbox.load(
        [
            device(f"S{i:03d}", organization=123 if i % 3 else 1, status=i % 2 == 0)
            for i in range(90)
        ]
    )
    expected = [f"S{i:03d}" for i in range(90) if i % 3 and i % 2 == 0]
    seen: list[str] = []
    url: str | None = f"{LIST}?organization=123&status=true&limit=7"
    while url is not None:
        page = sandbox_api.get(url).json()
        assert page["count"] == len(expected)
        seen.extend(serials(page))
        url = page["next"]
    assert seen == expected
