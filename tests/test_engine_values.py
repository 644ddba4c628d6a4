"""Canonical values: equal things compare equal, bad addresses are caught early."""

from __future__ import annotations

import pytest

from syncd.engine import InvalidValueError, canonical_ip, canonical_mac
from syncd.engine.values import current_value, desired_ip, desired_mac


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("255.255.255.255", "255.255.255.255"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:10.0.0.1", "::ffff:a00:1"),
        ("10.0.0.256", None),
        ("010.0.0.1", None),  # leading zeros are ambiguous (octal?): not an address
        ("10.0.0.1/24", None),
        ("router-1", None),
        ("", None),
    ],
)
def test_canonical_ip(value: str, expected: str | None) -> None:
    assert canonical_ip(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"),
        ("AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"),
        ("AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
        ("aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"),
        ("AABBCCDDEEFF", "aa:bb:cc:dd:ee:ff"),
        (" aa:bb:cc:dd:ee:ff ", "aa:bb:cc:dd:ee:ff"),
        ("aa:bb:cc:dd:ee", None),
        ("gg:bb:cc:dd:ee:ff", None),
        ("", None),
    ],
)
def test_canonical_mac(value: str, expected: str | None) -> None:
    assert canonical_mac(value) == expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("location", "", None),
        ("location", None, None),
        ("location", " Lab ", " Lab "),  # other text is compared exactly
        ("description", "", None),
        ("firmware_version", "", None),
        ("ip_address", "", None),
        ("ip_address", "2001:DB8::1", "2001:db8::1"),
        ("ip_address", "not-an-ip", "not-an-ip"),  # the inventory's odd value, as it is
        ("mac_address", "AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
        ("name", "", ""),  # name is required: "" is not "empty" there
        ("type", 10, 10),
        ("status", False, False),
    ],
)
def test_current_value_for_comparing(field: str, value: object, expected: object) -> None:
    assert current_value(field, value) == expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ip_address", "", None),  # the source says "empty"
        ("ip_address", "2001:DB8::1", "2001:db8::1"),
        ("ip_address", "10.0.0.1", "10.0.0.1"),
        ("mac_address", "", None),
        ("mac_address", "AABB.CCDD.EEFF", "aa:bb:cc:dd:ee:ff"),
    ],
)
def test_source_addresses_are_sent_in_canonical_form(
    field: str, value: str, expected: str | None
) -> None:
    convert = desired_ip if field == "ip_address" else desired_mac
    assert convert(value) == expected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ip_address", "10.0.0.1/24", "ip_address '10.0.0.1/24' is not an IP address"),
        ("ip_address", 167772161, "ip_address 167772161 is not an IP address"),
        ("mac_address", "00:11:22", "mac_address '00:11:22' is not a MAC address"),
    ],
)
def test_bad_addresses_from_a_source_are_invalid(field: str, value: object, message: str) -> None:
    convert = desired_ip if field == "ip_address" else desired_mac
    with pytest.raises(InvalidValueError) as info:
        convert(value)
    assert str(info.value) == message
