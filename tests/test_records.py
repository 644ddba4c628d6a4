"""The device's fields are declared once (``syncd.records.ATTRIBUTES``) and every layer
takes them from there; IP and MAC have one canonical form; a record's payload is
encoded once and its hash taken from those bytes."""

from __future__ import annotations

import json

import pytest

from connectors.csv_drop.values import parse_ip, parse_mac
from syncd.canonical import canonical_ip, canonical_mac
from syncd.engine.values import current_value, desired_ip, desired_mac
from syncd.inventory.models import Device, DeviceCreate, DevicePatch, DeviceReplace
from syncd.records import (
    API_FIELDS,
    ATTRIBUTES,
    DETAIL_ONLY,
    IDENTIFIER,
    RECORD_FIELDS,
    DeviceRecord,
    content_hash,
    content_hashes,
    hash_input,
    record_values,
)


def test_the_api_models_carry_exactly_the_declared_fields() -> None:
    assert len(ATTRIBUTES) == 9
    assert set(DeviceCreate.model_fields) == {IDENTIFIER, *API_FIELDS}
    assert set(DeviceReplace.model_fields) == set(API_FIELDS)
    assert set(DevicePatch.model_fields) == set(API_FIELDS)
    assert {IDENTIFIER, *API_FIELDS} <= set(Device.model_fields)
    assert {"description", "mac_address", "firmware_version"} == DETAIL_ONLY
    assert RECORD_FIELDS[1:3] == ("device_type", "organization")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("010.0.0.1", None),
        ("not an ip", None),
    ],
)
def test_one_canonical_ip_everywhere(raw: str, expected: str | None) -> None:
    assert canonical_ip(raw) == expected
    if expected is None:
        with pytest.raises(ValueError, match="not"):
            desired_ip(raw)
        assert current_value("ip_address", raw) == raw  # the inventory's, kept as text
    else:
        assert desired_ip(raw) == expected
        assert parse_ip(raw.strip()) == expected
    assert canonical_ip("10.0.0.1/24", interface=True) == "10.0.0.1"
    assert parse_ip("2001:db8::1/64") == "2001:db8::1"


@pytest.mark.parametrize(
    "raw", ["00:1b:54:aa:01:02", "00-1B-54-AA-01-02", "001b.54aa.0102", "001B54AA0102"]
)
def test_one_canonical_mac_everywhere(raw: str) -> None:
    assert canonical_mac(raw) == "00:1b:54:aa:01:02"
    assert parse_mac(raw) == "00:1b:54:aa:01:02"
    assert desired_mac(raw) == "00:1b:54:aa:01:02"
    assert canonical_mac("00:1b:54:aa:01") is None


def test_the_payload_is_encoded_once_and_hashed_from_its_bytes() -> None:
    record = DeviceRecord(
        source="csv",
        serial_number="SN1",
        origin="a.csv:2",
        name="Zürich-1",
        status=False,
        device_type=7,
        extra=(("po", "17"), ("cost", "3")),
    )
    payload = record.payload()
    assert json.loads(payload) == [
        "Zürich-1",
        7,
        None,
        False,
        None,
        None,
        None,
        None,
        None,
        [["cost", "3"], ["po", "17"]],
    ]
    assert record_values(json.loads(payload)) == (
        {"name": "Zürich-1", "device_type": 7, "status": False},
        (("cost", "3"), ("po", "17")),
    )
    # a payload an earlier version stored (an object) reads the same
    assert record_values({"name": "Zürich-1", "extra": [["po", "17"]]}) == (
        {"name": "Zürich-1"},
        (("po", "17"),),
    )
    assert record.content_hash() == content_hash("SN1", True, "upsert", payload)
    # what it says, not where it came from; the extra pairs in any order
    moved = DeviceRecord(
        source="csv",
        serial_number="SN1",
        origin="b.csv:9",
        name="Zürich-1",
        status=False,
        device_type=7,
        extra=(("cost", "3"), ("po", "17")),
    )
    assert moved.content_hash() == record.content_hash()
    assert DeviceRecord(source="csv", serial_number="SN1", name="x").content_hash() != (
        DeviceRecord(source="csv", serial_number="SN1", name="x", wanted=False).content_hash()
    )


def test_the_content_hash_is_the_one_stored_rows_carry() -> None:
    """Every stored source row carries its hash: a different algorithm or input would
    make every device read as changed after an upgrade. Pinned to a known value, and
    the many-at-once form agrees with the one-by-one form."""
    record = DeviceRecord(
        source="csv", serial_number="SN1", origin="a.csv:2", name="sw1", ip_address="10.0.0.1"
    )
    assert record.content_hash() == "a9e442a26be426d683b7aa4f2342d929"
    assert hash_input("SN1", True, "upsert", b"[]") == b"SN1\x001\x00upsert\x00[]"
    rows = [
        ("SN1", True, "upsert", record.payload()),
        ("SN2", False, "delete", b"[]"),
        ("SN3", True, "delete", b"[1]"),
        ("SN\u00e9", False, "upsert", b"[]"),
        ("SN1", True, "upsert", record.payload()),
    ]
    serials, wanted, actions, payloads = (list(column) for column in zip(*rows, strict=True))
    assert content_hashes(serials, wanted, actions, payloads) == [
        content_hash(*row) for row in rows
    ]
    assert content_hashes(serials, wanted, actions, payloads)[0] == record.content_hash()
