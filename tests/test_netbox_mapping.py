"""Mapping real recorded NetBox devices to records, and the options that steer it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.netbox import BLANK_SERIAL, CASE_COLLISION, DeviceMapper, NetBoxConfig
from connectors.netbox.config import NetBoxMapping
from connectors.netbox.mapping import flag_case_twins
from syncd.records import DeviceRecord, Reject
from tests.fakenetbox import fixture, make_device, recorded_devices

URL = "https://netbox.example.com"


def mapper(**mapping: Any) -> DeviceMapper:
    return DeviceMapper("netbox", NetBoxMapping.model_validate(mapping))


def record(item: DeviceRecord | Reject) -> DeviceRecord:
    assert isinstance(item, DeviceRecord), item
    return item


def test_device_107_maps_every_field() -> None:
    got = record(mapper()(fixture("device_107.json", URL)))
    assert got.source == "netbox"
    assert got.serial_number == "T8JKSZP"
    assert got.name == "dm-nyc-app01"
    assert got.device_type == "PowerEdge R650"
    assert got.organization == "Dunder-Mifflin, Inc."
    assert got.ip_address is None  # NetBox has no primary IP for it
    assert got.location == "DM-NYC"
    assert got.description is None  # empty in NetBox: says nothing
    assert got.firmware_version == "Ubuntu Linux 22.04"
    assert got.wanted  # "failed" is not an unwanted status by default
    assert got.origin == f"{URL}/dcim/devices/107/"
    assert ("netbox_id", "107") in got.extra
    assert ("netbox_status", "failed") in got.extra


def test_demo_router_maps_ip_without_prefix_and_rack_into_location() -> None:
    got = record(mapper()(fixture("device_1_demo_router.json", URL)))
    assert got.serial_number == "FOC4315T82M"
    assert got.name == "dmi01-akron-rtr01"
    assert got.device_type == "ISR 1111-8P"
    assert got.ip_address == "10.250.2.11"
    assert got.location == "DM-Akron / Comms closet"
    assert got.firmware_version == "Cisco IOS"


def test_device_109_has_a_blank_serial_and_is_skipped() -> None:
    got = mapper()(fixture("device_109.json", URL))
    assert isinstance(got, Reject)
    assert got.reason == BLANK_SERIAL
    assert got.location == "netbox device 109 (dm-nyc-tor01)"


def test_device_109_prefers_primary_ip4_over_the_v6_primary_ip() -> None:
    device = fixture("device_109.json", URL) | {"serial": "SN109"}
    assert device["primary_ip"]["address"].startswith("2001:db8")
    got = record(mapper()(device))
    assert got.ip_address == "10.250.1.25"
    assert got.description == "Uplinks migrated to new core"
    v6_first = record(mapper(ip_from=["primary_ip6"])(device))
    assert v6_first.ip_address == "2001:db8:250:1::6d"


def test_templates_choose_type_and_organization_keys() -> None:
    device = fixture("device_107.json", URL)
    got = record(mapper(device_type="{manufacturer} {model}", organization="{tenant_slug}")(device))
    assert got.device_type == "Dell PowerEdge R650"
    assert got.organization == "dunder-mifflin"
    slug = record(mapper(device_type="{device_type_slug}")(device))
    assert slug.device_type == "poweredge-r650"


def test_firmware_from_a_custom_field() -> None:
    device = make_device(1, "SN1", "r1", custom_fields={"sw_version": "17.9.4"}, platform="IOS")
    assert record(mapper(firmware="{cf_sw_version}")(device)).firmware_version == "17.9.4"
    assert record(mapper()(device)).firmware_version == "IOS"
    without = make_device(2, "SN2", "r2", custom_fields={"sw_version": None})
    assert record(mapper(firmware="{cf_sw_version}")(without)).firmware_version is None


def test_a_template_with_an_empty_placeholder_says_nothing() -> None:
    device = make_device(1, "SN1", "r1", tenant=None)
    got = record(mapper(organization="{tenant} ({tenant_slug})")(device))
    assert got.organization is None
    fallback = record(mapper(default_organization="unassigned")(device))
    assert fallback.organization == "unassigned"


def test_location_parts_and_separator() -> None:
    device = make_device(1, "SN1", "r1", site="ZRH", location="Hall 3", rack="R12")
    assert record(mapper()(device)).location == "ZRH / Hall 3 / R12"
    custom = mapper(location=["site_slug", "rack"], location_separator=", ")
    assert record(custom(device)).location == "zrh, R12"


def test_empty_values_clear_optional_fields_only_when_asked() -> None:
    device = make_device(1, "SN1", "r1", tenant=None)
    kept = record(mapper()(device))
    assert (kept.description, kept.ip_address, kept.organization) == (None, None, None)
    cleared = record(mapper(empty_values="clear")(device))
    assert (cleared.description, cleared.ip_address) == ("", "")
    assert cleared.organization is None  # needed to create a device: never cleared


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({}, "MR9YJ2I"),
        ({"unnamed": "template", "unnamed_template": "{model}-{serial}"}, "PowerEdge R650-MR9YJ2I"),
        ({"unnamed": "template", "unnamed_template": "{site_slug}-{id}"}, "dm-nyc-247"),
    ],
)
def test_unnamed_devices_are_named_by_the_rule(rule: dict[str, str], expected: str) -> None:
    device = next(d for d in recorded_devices(URL) if d["id"] == 247)
    assert device["name"] is None
    assert record(mapper(**rule)(device)).name == expected


def test_unnamed_devices_can_be_skipped() -> None:
    device = next(d for d in recorded_devices(URL) if d["id"] == 247)
    got = mapper(unnamed="skip")(device)
    assert isinstance(got, Reject)
    assert got.serial_number == "MR9YJ2I"
    assert "no name" in got.reason


def test_all_24_recorded_unnamed_devices_with_serials_get_their_serial_as_name() -> None:
    unnamed = [d for d in recorded_devices(URL) if not d["name"]]
    assert len(unnamed) == 24
    records = [m for d in unnamed if isinstance(m := mapper()(d), DeviceRecord)]
    assert records
    assert all(r.name == r.serial_number for r in records)


@pytest.mark.parametrize("status", ["decommissioning", "offline", "inventory"])
def test_unwanted_statuses_are_not_wanted(status: str) -> None:
    got = record(mapper()(make_device(1, "SN1", "r1", status=status)))
    assert not got.wanted
    assert got.action == "upsert"


def test_unwanted_statuses_are_configurable() -> None:
    device = make_device(1, "SN1", "r1", status="planned")
    assert record(mapper()(device)).wanted
    assert not record(mapper(unwanted_statuses=["planned"])(device)).wanted
    with pytest.raises(ValidationError, match="unknown status"):
        NetBoxMapping.model_validate({"unwanted_statuses": ["retired"]})


def test_recorded_statuses_split_into_wanted_and_not() -> None:
    records = [m for d in recorded_devices(URL) if isinstance(m := mapper()(d), DeviceRecord)]
    unwanted = {dict(r.extra)["netbox_status"] for r in records if not r.wanted}
    assert unwanted == {"decommissioning", "offline", "inventory"}


def test_case_twins_are_flagged_on_both_records() -> None:
    devices = recorded_devices(URL)
    records = flag_case_twins(m for d in devices if isinstance(m := mapper()(d), DeviceRecord))
    flagged = {
        r.serial_number: other for r in records if (other := dict(r.extra).get(CASE_COLLISION))
    }
    assert flagged["T8JKSZP"] == "t8jkszp"
    assert flagged["t8jkszp"] == "T8JKSZP"
    assert len(flagged) == 12  # six pairs
    assert all(flagged[other] == serial for serial, other in flagged.items())


def test_exact_duplicates_are_all_kept_not_flagged() -> None:
    devices = [d for d in recorded_devices(URL) if d["serial"] == "JPE42634115"]
    records = flag_case_twins(record(mapper()(d)) for d in devices)
    assert len(records) == 3
    assert {r.origin for r in records} == {f"{URL}/dcim/devices/{i}/" for i in (114, 139, 243)}
    assert not any(CASE_COLLISION in dict(r.extra) for r in records)


def test_mapping_does_not_touch_its_input() -> None:
    device = fixture("device_107.json", URL)
    before = copy.deepcopy(device)
    mapper()(device)
    assert device == before


# -- configuration -------------------------------------------------------------------------


def test_a_token_in_the_options_is_refused_without_echoing_it() -> None:
    secret = "nbt_abc123.s3cr3t-value-never-shown"
    with pytest.raises(ValidationError) as caught:
        NetBoxConfig.model_validate({"url": URL, "token": secret})
    text = str(caught.value)
    assert "never put in the configuration" in text
    assert "NETBOX_TOKEN" in text
    assert secret not in text
    assert "s3cr3t" not in repr(caught.value.errors())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mapping": {"device_type": "{no_such_key}"}}, "unknown placeholder {no_such_key}"),
        ({"mapping": {"device_type": "{model:>10}"}}, "placeholders are plain names"),
        ({"mapping": {"location": ["site", "floor"]}}, "unknown placeholder {floor}"),
        ({"filters": {"limit": 10}}, "set by the connector itself"),
        ({"filters": {"last_updated__gte": "2020-01-01"}}, "set by the connector itself"),
        ({"filters": {"Site Name": "x"}}, "not a NetBox filter name"),
        ({"url": "netbox.example.com"}, "http(s) URL"),
        ({"page_size": 5000}, "less than or equal to 1000"),
    ],
)
def test_bad_options_are_refused_with_a_reason(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        NetBoxConfig.model_validate({"url": URL, **options})


def test_filters_become_query_values() -> None:
    config = NetBoxConfig.model_validate(
        {"url": f"{URL}/api/", "filters": {"site": ["nyc", "zrh"], "has_primary_ip": True}}
    )
    assert config.url == URL  # a pasted API URL is accepted
    assert config.query_filters() == {"site": ["nyc", "zrh"], "has_primary_ip": "true"}
