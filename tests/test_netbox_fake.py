"""The fake NetBox answers as the recorded NetBox 4.6.8 did, through pynetbox.

Each recorded filter response is asked again from the fake with the same query; the
fake must give the same devices in the same order, the same ``count`` and (URLs
rewritten) the same ``next`` link. Tests that lean on the fake are only as good as this.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pynetbox
import pytest
import requests

from tests.fakenetbox import FakeNetBox, fixture, recorded_devices


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeNetBox]:
    with FakeNetBox() as nb:
        yield nb


def _get(fake: FakeNetBox, path: str, token: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or fake.v2_token}"}
    return requests.get(f"{fake.url}{path}", params=params, headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("recording", "params"),
    [
        ("devices_limit50_offset0.json", {"limit": 50}),
        ("devices_limit50_offset100.json", {"limit": 50, "offset": 100}),
        ("devices_limit50_offset200.json", {"limit": 50, "offset": 200}),
        ("devices_serial_empty_limit100.json", {"serial__empty": "true", "limit": 100}),
        ("devices_serial_nonempty_limit50.json", {"serial__empty": "false", "limit": 50}),
        ("devices_serial_JPE42634115_duplicate.json", {"serial": "JPE42634115"}),
        (
            "devices_last_updated_gte_second_wave.json",
            {"last_updated__gte": "2026-11-27T07:53:03Z"},
        ),
        ("devices_last_updated_lt_2021.json", {"last_updated__lt": "2021-01-01T00:00:00Z"}),
        ("devices_unnamed.json", {"name__empty": "true"}),
        ("devices_brief_limit50_offset0.json", {"brief": "true", "limit": 50}),
        (
            "devices_fields_limit50_offset0.json",
            {
                "fields": "id,name,serial,asset_tag,status,site,primary_ip4,last_updated",
                "limit": 50,
            },
        ),
    ],
)
def test_fake_answers_like_the_recording(
    fake: FakeNetBox, recording: str, params: dict[str, Any]
) -> None:
    recorded = fixture(recording, fake.url)
    answer = _get(fake, "/api/dcim/devices/", **params)
    assert answer.status_code == 200
    body = answer.json()
    assert body["count"] == recorded["count"]
    assert body["next"] == recorded["next"]
    assert body["previous"] == recorded["previous"]
    assert body["results"] == recorded["results"]


def test_fake_holds_the_documented_demo_data(fake: FakeNetBox) -> None:
    devices = recorded_devices()
    assert len(devices) == 214
    assert sum(1 for d in devices if d["serial"]) == 162
    assert sum(1 for d in devices if not d["name"]) == 24


def test_status_and_headers_are_netbox_46(fake: FakeNetBox) -> None:
    answer = _get(fake, "/api/status/")
    assert answer.json()["netbox-version"] == "4.6.8"
    assert answer.headers["API-Version"] == "4.6"
    nb = pynetbox.api(fake.url, token=fake.v2_token)
    assert nb.version == "4.6"


def test_single_device_and_recorded_not_found(fake: FakeNetBox) -> None:
    assert _get(fake, "/api/dcim/devices/107/").json() == fixture("device_107.json", fake.url)
    missing = _get(fake, "/api/dcim/devices/99999/")
    assert missing.status_code == 404
    assert missing.json() == fixture("error_device_not_found.json")


def test_refusals_are_the_recorded_403s(fake: FakeNetBox) -> None:
    anonymous = requests.get(f"{fake.url}/api/dcim/devices/", timeout=5)
    assert (anonymous.status_code, anonymous.json()) == (403, fixture("error_no_token.json"))
    wrong = _get(fake, "/api/dcim/devices/", token="nbt_abc.def")
    assert (wrong.status_code, wrong.json()) == (403, fixture("error_invalid_token.json"))
    assert [r.auth for r in fake.requests[-2:]] == [None, "Bearer"]


def test_unknown_filter_values_are_refused_like_netbox(fake: FakeNetBox) -> None:
    answer = _get(fake, "/api/dcim/devices/", site="no-such-site")
    assert answer.status_code == 400
    assert "no-such-site is not one of the available choices" in answer.json()["site"][0]


def test_change_log_records_a_deletion_with_its_serial() -> None:
    with FakeNetBox() as nb:
        gone = nb.delete_device(107)
        nb_api = pynetbox.api(nb.url, token=nb.v2_token)
        entries = list(
            nb_api.core.object_changes.filter(changed_object_type="dcim.device", action="delete")
        )
        assert len(entries) == 1
        entry = dict(entries[0])
        assert entry["changed_object_id"] == 107
        assert entry["action"] == {"value": "delete", "label": "Deleted"}
        assert entry["prechange_data"]["serial"] == gone["serial"] == "T8JKSZP"
        assert len(list(nb_api.dcim.devices.all())) == 213
