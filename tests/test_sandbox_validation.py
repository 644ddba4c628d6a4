"""400 answers of the sandbox: DRF-style bodies that name every bad field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

LIST = "/inventory_device_serial/"
VALID: dict[str, Any] = {"serial_number": "V1", "name": "valid", "type": 1, "organization": 123}


def create(api: httpx.Client, **fields: Any) -> httpx.Response:
    body = {**VALID, **fields}
    return api.post(LIST, json={k: v for k, v in body.items() if v is not ...})


def test_missing_required_fields_are_each_named(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(LIST, json={})
    assert r.status_code == 400
    assert r.json() == {
        "serial_number": ["This field is required."],
        "name": ["This field is required."],
        "type": ["This field is required."],
        "organization": ["This field is required."],
    }


def test_empty_body_counts_as_no_fields(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(LIST)
    assert r.status_code == 400
    assert set(r.json()) == {"serial_number", "name", "type", "organization"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("type", 99, 'Invalid pk "99" - object does not exist.'),
        ("type", "99", 'Invalid pk "99" - object does not exist.'),
        ("organization", 4242, 'Invalid pk "4242" - object does not exist.'),
        ("type", "router", "Incorrect type. Expected pk value, received str."),
        ("type", True, "Incorrect type. Expected pk value, received bool."),
        ("organization", [1], "Incorrect type. Expected pk value, received list."),
        ("type", None, "This field may not be null."),
        ("organization", "", "This field may not be null."),
        ("serial_number", "", "This field may not be blank."),
        ("serial_number", "   ", "This field may not be blank."),
        ("serial_number", None, "This field may not be null."),
        ("serial_number", {"a": 1}, "Not a valid string."),
        ("serial_number", "x" * 256, "Ensure this field has no more than 255 characters."),
        ("name", "", "This field may not be blank."),
        ("name", None, "This field may not be null."),
        ("name", False, "Not a valid string."),
        ("name", "a\x00b", "Null characters are not allowed."),
        ("status", "maybe", "Must be a valid boolean."),
        ("status", None, "This field may not be null."),
        ("status", 2, "Must be a valid boolean."),
        ("ip_address", "192.168.1.300", "Enter a valid IPv4 or IPv6 address."),
        ("ip_address", "10.0.0.1/24", "Enter a valid IPv4 or IPv6 address."),
        ("ip_address", "2001:db8::g", "Enter a valid IPv4 or IPv6 address."),
        ("ip_address", 167772161, "Enter a valid IPv4 or IPv6 address."),
        ("mac_address", "00:1B:44:11:3A", "Enter a valid MAC address."),
        ("mac_address", "00:1B:44:11:3A:ZZ", "Enter a valid MAC address."),
        ("location", ["a"], "Not a valid string."),
        ("description", {"x": 1}, "Not a valid string."),
        ("firmware_version", "v" * 101, "Ensure this field has no more than 100 characters."),
    ],
)
def test_bad_value_is_named_with_drf_message(
    sandbox_api: httpx.Client, field: str, value: object, message: str
) -> None:
    r = create(sandbox_api, **{field: value})
    assert r.status_code == 400
    assert r.json() == {field: [message]}
    assert sandbox_api.get(LIST).json()["count"] == 0


def test_several_bad_fields_are_all_named(sandbox_api: httpx.Client) -> None:
    r = create(sandbox_api, type=99, organization="x", ip_address="nope", status="perhaps")
    assert r.status_code == 400
    assert set(r.json()) == {"type", "organization", "ip_address", "status"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("True", True),
        ("1", True),
        (1, True),
        ("yes", True),
        ("on", True),
        (False, False),
        ("false", False),
        ("False", False),
        ("0", False),
        (0, False),
        ("off", False),
    ],
)
def test_boolean_spellings_drf_accepts(
    sandbox_api: httpx.Client, value: object, expected: bool
) -> None:
    r = create(sandbox_api, status=value)
    assert r.status_code == 201
    assert r.json()["status"] is expected


@pytest.mark.parametrize(
    "mac", ["00:1B:44:11:3A:B7", "00-1b-44-11-3a-b7", "001B.4411.3AB7", "001B44113AB7"]
)
def test_mac_address_forms_are_kept_as_written(sandbox_api: httpx.Client, mac: str) -> None:
    assert create(sandbox_api, mac_address=mac).status_code == 201
    assert sandbox_api.get(f"{LIST}V1/").json()["mac_address"] == mac


def test_numbers_for_string_fields_become_strings(sandbox_api: httpx.Client) -> None:
    r = create(sandbox_api, serial_number=12345, name=7)
    assert r.status_code == 201
    assert r.json()["serial_number"] == "12345"
    assert r.json()["name"] == "7"


def test_blank_ip_and_mac_clear_them(sandbox_api: httpx.Client) -> None:
    create(sandbox_api, ip_address="10.0.0.1", mac_address="00:1B:44:11:3A:B7")
    r = sandbox_api.patch(f"{LIST}V1/", json={"ip_address": "", "mac_address": " "})
    assert r.status_code == 200
    detail = sandbox_api.get(f"{LIST}V1/").json()
    assert detail["ip_address"] is None
    assert detail["mac_address"] is None


def test_patch_validates_what_it_gets(sandbox_api: httpx.Client) -> None:
    create(sandbox_api)
    r = sandbox_api.patch(f"{LIST}V1/", json={"name": "", "organization": 5, "status": "x"})
    assert r.status_code == 400
    assert r.json() == {
        "name": ["This field may not be blank."],
        "organization": ['Invalid pk "5" - object does not exist.'],
        "status": ["Must be a valid boolean."],
    }
    assert sandbox_api.get(f"{LIST}V1/").json()["name"] == "valid"


def test_validation_comes_before_the_409(sandbox_api: httpx.Client) -> None:
    create(sandbox_api)
    r = create(sandbox_api, type=99)
    assert r.status_code == 400
    assert r.json() == {"type": ['Invalid pk "99" - object does not exist.']}


def test_nan_is_not_json(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(
        LIST,
        content=b'{"serial_number": "N", "name": "n", "type": NaN, "organization": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json() == {
        "detail": "JSON parse error - Out of range float values are not JSON compliant: 'NaN'"
    }
