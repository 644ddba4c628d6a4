"""The sandbox's device endpoints: create, read, replace, patch, delete, and their shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from syncd.sandbox.testing import SandboxProcess

LIST = "/inventory_device_serial/"

LIST_KEYS = {
    "serial_number",
    "name",
    "type",
    "organization",
    "status",
    "last_status_change",
    "ip_address",
    "location",
    "pending_changes",
    "created_at",
    "updated_at",
}
DETAIL_ONLY = {"description", "mac_address", "firmware_version"}


def full_device(serial: str = "SN123456789", **overrides: Any) -> dict[str, Any]:
    """A create body with every writable field."""
    body: dict[str, Any] = {
        "serial_number": serial,
        "name": "Core-Switch-01",
        "type": 3,
        "organization": 123,
        "ip_address": "192.168.1.10",
        "mac_address": "00:1B:44:11:3A:B7",
        "location": "Data Center A - Rack 15",
        "status": True,
        "description": "Primary core switch for data center connectivity",
        "firmware_version": "16.12.05",
    }
    body.update(overrides)
    return body


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def test_create_returns_201_in_list_shape(sandbox_api: httpx.Client) -> None:
    before = datetime.now(UTC)
    r = sandbox_api.post(LIST, json=full_device())
    assert r.status_code == 201
    body = r.json()
    assert set(body) == LIST_KEYS
    assert body["serial_number"] == "SN123456789"
    assert body["type"] == {"id": 3, "name": "Network Switch", "model": "Cisco Catalyst 9300"}
    assert body["organization"] == {"id": 123, "name": "Acme Corp IT"}
    assert body["status"] is True
    assert body["pending_changes"] is False
    created = parse_time(body["created_at"])
    assert before <= created <= datetime.now(UTC)
    assert body["updated_at"] == body["created_at"]
    # a create that gives a status records when that status began
    assert body["last_status_change"] == body["created_at"]


def test_detail_has_every_contract_field(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    r = sandbox_api.get(f"{LIST}SN123456789/")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == LIST_KEYS | DETAIL_ONLY
    assert body["type"] == {
        "id": 3,
        "name": "Network Switch",
        "model": "Cisco Catalyst 9300",
        "manufacturer": "Cisco",
    }
    assert body["organization"] == {"id": 123, "name": "Acme Corp IT", "code": "ACME-IT"}
    assert body["mac_address"] == "00:1B:44:11:3A:B7"
    assert body["description"] == "Primary core switch for data center connectivity"
    assert body["firmware_version"] == "16.12.05"
    assert body["location"] == "Data Center A - Rack 15"
    assert body["ip_address"] == "192.168.1.10"
    assert "pending_details" not in body


def test_list_items_really_omit_detail_only_fields(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    item = sandbox_api.get(LIST).json()["results"][0]
    assert set(item) == LIST_KEYS
    assert "manufacturer" not in item["type"]
    assert "code" not in item["organization"]


def test_create_without_status_is_down_with_no_status_change(sandbox_api: httpx.Client) -> None:
    body = {"serial_number": "MIN1", "name": "min", "type": 1, "organization": 1}
    r = sandbox_api.post(LIST, json=body)
    assert r.status_code == 201
    assert r.json()["status"] is False
    assert r.json()["last_status_change"] is None
    detail = sandbox_api.get(f"{LIST}MIN1/").json()
    for key in ("ip_address", "mac_address", "location", "description", "firmware_version"):
        assert detail[key] is None


def test_duplicate_serial_is_409(sandbox_api: httpx.Client) -> None:
    assert sandbox_api.post(LIST, json=full_device("DUP")).status_code == 201
    r = sandbox_api.post(LIST, json=full_device("DUP", name="other"))
    assert r.status_code == 409
    assert set(r.json()) == {"detail"}
    assert sandbox_api.get(f"{LIST}DUP/").json()["name"] == "Core-Switch-01"


def test_serials_are_case_sensitive(sandbox_api: httpx.Client) -> None:
    assert sandbox_api.post(LIST, json=full_device("ABC", name="upper")).status_code == 201
    assert sandbox_api.post(LIST, json=full_device("abc", name="lower")).status_code == 201
    assert sandbox_api.get(f"{LIST}ABC/").json()["name"] == "upper"
    assert sandbox_api.get(f"{LIST}abc/").json()["name"] == "lower"
    assert sandbox_api.get(f"{LIST}Abc/").status_code == 404
    listed = [d["serial_number"] for d in sandbox_api.get(LIST).json()["results"]]
    assert listed == ["ABC", "abc"]  # code-point order: upper case first
    assert sandbox_api.delete(f"{LIST}abc/").status_code == 204
    assert sandbox_api.get(f"{LIST}ABC/").status_code == 200


@pytest.mark.parametrize(
    ("serial", "encoded"),
    [
        ("A/B", "A%2FB"),
        ("with space", "with%20space"),
        ("pct%41", "pct%2541"),
        ("q?&#", "q%3F%26%23"),
        ("ünï", "%C3%BCn%C3%AF"),
    ],
)
def test_serials_with_reserved_characters_round_trip(
    sandbox_api: httpx.Client, serial: str, encoded: str
) -> None:
    assert sandbox_api.post(LIST, json=full_device(serial)).status_code == 201
    url = f"{LIST}{encoded}/"
    assert sandbox_api.get(url).json()["serial_number"] == serial
    assert sandbox_api.patch(url, json={"name": "renamed"}).json()["name"] == "renamed"
    assert sandbox_api.delete(url).status_code == 204
    assert sandbox_api.get(url).status_code == 404


def test_unknown_serial_is_404_everywhere(sandbox_api: httpx.Client) -> None:
    url = f"{LIST}NOPE/"
    for response in (
        sandbox_api.get(url),
        sandbox_api.put(url, json={"name": "x", "type": 1, "organization": 1}),
        sandbox_api.patch(url, json={"name": "x"}),
        sandbox_api.delete(url),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


def test_put_replaces_and_clears_omitted_optional_fields(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    r = sandbox_api.put(
        f"{LIST}SN123456789/",
        json={"name": "Core-Switch-01-Updated", "type": 1, "organization": 2, "location": "R16"},
    )
    assert r.status_code == 200
    assert set(r.json()) == LIST_KEYS
    detail = sandbox_api.get(f"{LIST}SN123456789/").json()
    assert detail["name"] == "Core-Switch-01-Updated"
    assert detail["type"]["id"] == 1
    assert detail["organization"]["id"] == 2
    assert detail["location"] == "R16"
    for cleared in ("ip_address", "mac_address", "description", "firmware_version"):
        assert detail[cleared] is None, cleared
    # status is an optional field too: cleared to what a create without it gives
    assert detail["status"] is False


def test_put_clearing_status_is_a_status_change(sandbox_api: httpx.Client) -> None:
    created = sandbox_api.post(LIST, json=full_device(status=True)).json()
    minimal = {"name": "n", "type": 3, "organization": 123}
    cleared = sandbox_api.put(f"{LIST}SN123456789/", json=minimal).json()
    assert cleared["status"] is False
    assert parse_time(cleared["last_status_change"]) > parse_time(created["last_status_change"])
    # already Down: a second PUT without status flips nothing
    again = sandbox_api.put(f"{LIST}SN123456789/", json=minimal).json()
    assert again["status"] is False
    assert again["last_status_change"] == cleared["last_status_change"]
    assert parse_time(again["updated_at"]) > parse_time(cleared["updated_at"])


def test_put_requires_name_type_organization(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    r = sandbox_api.put(f"{LIST}SN123456789/", json={"location": "x"})
    assert r.status_code == 400
    assert r.json() == {
        "name": ["This field is required."],
        "type": ["This field is required."],
        "organization": ["This field is required."],
    }
    assert sandbox_api.get(f"{LIST}SN123456789/").json()["location"] == "Data Center A - Rack 15"


def test_patch_changes_only_given_fields(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    before = sandbox_api.get(f"{LIST}SN123456789/").json()
    r = sandbox_api.patch(f"{LIST}SN123456789/", json={"location": "Rack 99"})
    assert r.status_code == 200
    after = sandbox_api.get(f"{LIST}SN123456789/").json()
    assert after["location"] == "Rack 99"
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"location", "updated_at"}
    assert parse_time(after["updated_at"]) > parse_time(before["updated_at"])
    assert after["created_at"] == before["created_at"]


def test_patch_with_null_clears_a_field(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    sandbox_api.patch(f"{LIST}SN123456789/", json={"ip_address": None, "description": ""})
    detail = sandbox_api.get(f"{LIST}SN123456789/").json()
    assert detail["ip_address"] is None
    assert detail["description"] == ""


def test_status_flip_sets_last_status_change(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device(status=True))
    first = sandbox_api.get(f"{LIST}SN123456789/").json()["last_status_change"]
    # same status again: no change recorded
    same = sandbox_api.patch(f"{LIST}SN123456789/", json={"status": True}).json()
    assert same["last_status_change"] == first
    before = datetime.now(UTC)
    flipped = sandbox_api.patch(f"{LIST}SN123456789/", json={"status": "false"}).json()
    assert flipped["status"] is False
    assert parse_time(flipped["last_status_change"]) >= before
    assert flipped["last_status_change"] == flipped["updated_at"]
    # PUT flips it back, and records it again
    back = sandbox_api.put(
        f"{LIST}SN123456789/", json={"name": "n", "type": 3, "organization": 123, "status": 1}
    ).json()
    assert back["status"] is True
    assert parse_time(back["last_status_change"]) > parse_time(flipped["last_status_change"])


def test_serial_in_update_body_equal_to_path_is_ignored(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    r = sandbox_api.patch(
        f"{LIST}SN123456789/", json={"serial_number": "SN123456789", "name": "same"}
    )
    assert r.status_code == 200
    assert r.json()["name"] == "same"


def test_serial_in_update_body_different_from_path_is_400(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    for method in ("PUT", "PATCH"):
        r = sandbox_api.request(
            method,
            f"{LIST}SN123456789/",
            json={"serial_number": "sn123456789", "name": "n", "type": 3, "organization": 123},
        )
        assert r.status_code == 400, method
        assert list(r.json()) == ["serial_number"]
    assert sandbox_api.get(f"{LIST}SN123456789/").json()["name"] == "Core-Switch-01"
    assert sandbox_api.get(f"{LIST}sn123456789/").status_code == 404


def test_read_only_fields_in_a_body_are_ignored(sandbox_api: httpx.Client) -> None:
    body = full_device(
        status=False,
        last_status_change="2000-01-01T00:00:00Z",
        pending_changes=True,
        pending_details={"configuration_updates": 9},
        created_at="2000-01-01T00:00:00Z",
        updated_at="2000-01-01T00:00:00Z",
        unknown_field="whatever",
    )
    r = sandbox_api.post(LIST, json=body)
    assert r.status_code == 201
    created = r.json()
    assert created["pending_changes"] is False
    assert not created["created_at"].startswith("2000")
    assert not created["last_status_change"].startswith("2000")
    r = sandbox_api.patch(f"{LIST}SN123456789/", json={"created_at": "2000-01-01T00:00:00Z"})
    assert r.status_code == 200
    assert r.json()["created_at"] == created["created_at"]


def test_delete_is_204_and_irreversible(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device())
    r = sandbox_api.delete(f"{LIST}SN123456789/")
    assert r.status_code == 204
    assert r.content == b""
    assert sandbox_api.get(f"{LIST}SN123456789/").status_code == 404
    assert sandbox_api.delete(f"{LIST}SN123456789/").status_code == 404
    assert sandbox_api.get(LIST).json()["count"] == 0
    # the serial is free again
    assert sandbox_api.post(LIST, json=full_device()).status_code == 201


def test_strings_are_trimmed_and_ipv6_normalised(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(
        LIST, json=full_device(name="  padded  ", ip_address="2001:0DB8:0:0::1", location=" L ")
    )
    assert r.status_code == 201
    assert r.json()["name"] == "padded"
    assert r.json()["location"] == "L"
    assert r.json()["ip_address"] == "2001:db8::1"


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("FE80::1%eth0", "fe80::1"),  # Django drops the zone
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),  # IPv4-mapped stays dotted
        ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
    ],
)
def test_ipv6_is_normalised_as_django_does(
    sandbox_api: httpx.Client, written: str, stored: str
) -> None:
    r = sandbox_api.post(LIST, json=full_device(ip_address=written))
    assert r.status_code == 201
    assert r.json()["ip_address"] == stored


def test_line_separators_are_escaped_in_json(sandbox_api: httpx.Client) -> None:
    # DRF's renderer escapes U+2028/U+2029 (legal in JSON, not in JavaScript)
    r = sandbox_api.post(LIST, json=full_device(location="a\u2028b\u2029c"))
    assert r.status_code == 201
    assert b'"location":"a\\u2028b\\u2029c"' in r.content
    assert r.json()["location"] == "a\u2028b\u2029c"


def test_form_encoded_body_is_accepted(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(
        LIST,
        data={
            "serial_number": "FORM1",
            "name": "f",
            "type": "1",
            "organization": "2",
            "status": "on",
        },
    )
    assert r.status_code == 201
    assert r.json()["status"] is True
    assert r.json()["organization"]["id"] == 2


def test_unsupported_media_type_is_415(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(LIST, content=b"serial_number=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json() == {"detail": 'Unsupported media type "text/plain" in request.'}


def test_malformed_json_is_400_parse_error(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(
        LIST, content=b'{"serial_number": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["detail"].startswith("JSON parse error - ")


def test_unknown_charset_is_ignored(sandbox_api: httpx.Client) -> None:
    # Django ignores a charset it does not know and reads the body as UTF-8
    r = sandbox_api.post(
        LIST,
        content=json.dumps(full_device(name="Zürich")).encode(),
        headers={"Content-Type": "application/json; charset=no-such-codec"},
    )
    assert r.status_code == 201
    assert r.json()["name"] == "Zürich"


def test_json_null_body_is_no_data(sandbox_api: httpx.Client) -> None:
    sandbox_api.post(LIST, json=full_device("SN1"))
    for method, path in (("POST", LIST), ("PUT", f"{LIST}SN1/"), ("PATCH", f"{LIST}SN1/")):
        r = sandbox_api.request(
            method, path, content=b"null", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, method
        assert r.json() == {"non_field_errors": ["No data provided"]}, method


def test_non_object_body_is_400(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(LIST, json=[full_device()])
    assert r.status_code == 400
    assert r.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


def test_missing_trailing_slash_redirects(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.get("/inventory_device_serial?limit=5")
    assert r.status_code == 301
    assert r.headers["location"] == "/api/v1/inventory_device_serial/?limit=5"
    r = sandbox_api.get("/inventory_device_serial/SN1")
    assert r.status_code == 301
    assert r.headers["location"] == "/api/v1/inventory_device_serial/SN1/"
    followed = sandbox_api.get("/inventory_device_serial", follow_redirects=True)
    assert followed.status_code == 200


def test_api_root_without_slash_redirects(sandbox: SandboxProcess) -> None:
    r = httpx.get(f"{sandbox.root_url}/api/v1?x=1")
    assert r.status_code == 301
    assert r.headers["location"] == "/api/v1/?x=1"


def test_wrong_method_is_405_with_allow(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.delete(LIST)
    assert r.status_code == 405
    assert r.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert "POST" in r.headers["allow"]
    sandbox_api.post(LIST, json=full_device())
    r = sandbox_api.post(f"{LIST}SN123456789/", json=full_device())
    assert r.status_code == 405
    assert "PATCH" in r.headers["allow"]


def test_unknown_paths_are_404(sandbox_api: httpx.Client, sandbox: SandboxProcess) -> None:
    assert sandbox_api.get("/inventory_devices/").status_code == 404
    assert httpx.get(f"{sandbox.root_url}/nothing/here").status_code == 404


def test_api_root_lists_the_endpoint(sandbox_api: httpx.Client, sandbox: SandboxProcess) -> None:
    r = sandbox_api.get("/")
    assert r.status_code == 200
    assert r.json() == {"inventory_device_serial": f"{sandbox.base_url}/inventory_device_serial/"}


def test_head_and_options(sandbox_api: httpx.Client) -> None:
    head = sandbox_api.head(LIST)
    assert head.status_code == 200
    assert head.content == b""
    options = sandbox_api.options(LIST)
    assert options.status_code == 200
    assert options.json()["name"] == "Inventory Device Serial List"


# -- the vendor page's curl examples, against the local base URL --------------------------


def test_curl_example_create(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(
        LIST,
        headers={"Content-Type": "application/json"},
        content=b"""{
            "serial_number": "SN987654321",
            "name": "Edge-Router-05",
            "type": 1,
            "organization": 123,
            "ip_address": "192.168.2.5",
            "location": "Branch Office B",
            "status": true,
            "description": "Primary edge router for branch connectivity"
        }""",
    )
    assert r.status_code == 201
    body = r.json()
    assert body["serial_number"] == "SN987654321"
    assert body["type"] == {"id": 1, "name": "Router", "model": "Cisco ISR 4331"}
    assert body["organization"] == {"id": 123, "name": "Acme Corp IT"}
    assert body["ip_address"] == "192.168.2.5"


def test_curl_example_list(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([full_device(f"SN{i:09d}", organization=123 if i % 2 else 1) for i in range(60)])
    r = sandbox_api.get(
        f"{sandbox.base_url}/inventory_device_serial/"
        "?organization=123&status=true&pending=true&limit=25",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 30
    assert len(page["results"]) == 25
    assert page["previous"] is None
    assert page["next"] == (
        f"{sandbox.base_url}/inventory_device_serial/"
        "?limit=25&offset=25&organization=123&pending=true&status=true"
    )


def test_curl_example_detail(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([full_device()])
    r = sandbox_api.get(
        f"{sandbox.base_url}/inventory_device_serial/SN123456789/?update_status=true&pending=true"
    )
    assert r.status_code == 200
    assert r.json()["pending_details"] == {
        "configuration_updates": 0,
        "firmware_update": False,
        "last_pending_change": None,
    }


def test_curl_example_put_patch_delete(sandbox: SandboxProcess, sandbox_api: httpx.Client) -> None:
    sandbox.load([full_device()])
    url = f"{sandbox.base_url}/inventory_device_serial/SN123456789/"
    put = sandbox_api.put(
        url,
        json={
            "name": "Core-Switch-01-Updated",
            "type": 3,
            "organization": 123,
            "ip_address": "192.168.1.15",
            "location": "Data Center A - Rack 16",
            "status": True,
            "description": "Updated primary core switch with new configuration",
            "firmware_version": "16.12.06",
        },
    )
    assert put.status_code == 200
    assert put.json()["location"] == "Data Center A - Rack 16"
    patch = sandbox_api.patch(
        url,
        json={
            "name": "Core-Switch-01-Updated",
            "status": False,
            "description": "Device offline for scheduled maintenance",
        },
    )
    assert patch.status_code == 200
    assert patch.json()["status"] is False
    detail = sandbox_api.get(url).json()
    assert detail["description"] == "Device offline for scheduled maintenance"
    assert detail["firmware_version"] == "16.12.06"
    assert sandbox_api.delete(url).status_code == 204
