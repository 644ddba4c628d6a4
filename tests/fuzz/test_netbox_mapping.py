"""Fuzzing the NetBox mapping: any JSON device object, under any mapping, either maps to
a record or gives a located, readable reject; it never raises.

Devices are drawn as JSON objects over NetBox's own keys (and others), every value any
JSON: a nested object where a string is expected, a list where an object is, numbers,
booleans, nulls, blank and hostile strings. The recorded NetBox devices, each with one
field replaced by any JSON, are fuzzed too, so the paths a real device takes are hit.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.netbox.config import NetBoxMapping
from connectors.netbox.mapping import DeviceMapper
from syncd.records import DeviceRecord, Reject
from tests.fakenetbox import recorded_devices
from tests.profiles import examples

KEYS = (
    "id",
    "name",
    "serial",
    "asset_tag",
    "status",
    "description",
    "device_type",
    "tenant",
    "site",
    "location",
    "rack",
    "role",
    "platform",
    "primary_ip",
    "primary_ip4",
    "primary_ip6",
    "oob_ip",
    "custom_fields",
    "display_url",
)
NESTED_KEYS = ("name", "model", "slug", "display", "value", "id", "address", "manufacturer")

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\x00", "10.0.0.1/24", "::1/64", "999.1.1.1/8", "active", "offline"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(NESTED_KEYS) | st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=12,
)
DEVICES = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), JSON, max_size=12)

MAPPINGS = st.builds(
    dict,
    device_type=st.sampled_from(["{model}", "{manufacturer} {model}", "{device_type_slug}"]),
    organization=st.sampled_from(["{tenant}", "{tenant_slug}"]),
    unnamed=st.sampled_from(["serial", "skip", "template"]),
    ip_from=st.sampled_from([["primary_ip4", "primary_ip"], ["oob_ip"], ["primary_ip6"]]),
    location=st.sampled_from([["site", "location", "rack"], ["site"], []]),
    firmware=st.sampled_from(["{platform}", "{cf_sw_version}"]),
    empty_values=st.sampled_from(["ignore", "clear"]),
).map(NetBoxMapping.model_validate)

RECORDED = recorded_devices()


def _check(item: DeviceRecord | Reject) -> None:
    if isinstance(item, Reject):
        assert item.location.startswith(("netbox device", "http"))
        assert item.reason
        assert item.reason.isprintable() or "\\x" in repr(item.reason)
        return
    assert isinstance(item, DeviceRecord)
    assert item.serial_number
    assert item.serial_number == item.serial_number.strip()
    assert item.name
    assert item.origin
    json.dumps(item.values())  # what is stored is JSON


@settings(max_examples=examples(ci=150, nightly=50_000))
@given(device=DEVICES, mapping=MAPPINGS)
def test_any_device_object_maps_or_is_a_located_reject(
    device: dict[str, Any], mapping: NetBoxMapping
) -> None:
    _check(DeviceMapper("netbox", mapping)(device))


@settings(max_examples=examples(ci=100, nightly=50_000))
@given(
    index=st.integers(min_value=0, max_value=len(RECORDED) - 1),
    key=st.sampled_from(KEYS),
    value=JSON,
    mapping=MAPPINGS,
)
def test_a_recorded_device_with_any_field_replaced_maps_or_is_rejected(
    index: int, key: str, value: object, mapping: NetBoxMapping
) -> None:
    device = {**RECORDED[index], key: value}
    _check(DeviceMapper("netbox", mapping)(device))
