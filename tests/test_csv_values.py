"""CSV drop: cell parsers, header mapping, delimiter sniffing and the options model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.csv_drop import CsvDropConfig
from connectors.csv_drop.header import (
    PATH_SEPARATOR,
    HeaderError,
    join_path,
    normalize_header,
    plan_header,
)
from connectors.csv_drop.reader import sniff_delimiter
from connectors.csv_drop.values import parse_action, parse_ip, parse_mac, parse_status
from connectors.netbox.config import NetBoxMapping


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("255.255.255.255", "255.255.255.255"),
        ("10.0.0.1/24", "10.0.0.1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8::1/64", "2001:db8::1"),
    ],
)
def test_ip_addresses_are_normalised(cell: str, expected: str) -> None:
    assert parse_ip(cell) == expected


@pytest.mark.parametrize(
    "cell",
    ["10.0.0.256", "10.0.0", "010.0.0.1", "host.example", "\u0661\u0660.0.0.1", "10.0.0.1/33"],
)
def test_bad_ip_addresses_are_refused(cell: str) -> None:
    with pytest.raises(ValueError, match="not a valid IPv4 or IPv6 address"):
        parse_ip(cell)


@pytest.mark.parametrize(
    "cell",
    [
        "00:1B:54:AA:01:02",
        "00-1b-54-aa-01-02",
        "001b.54aa.0102",
        "001B54AA0102",
        "00:1b:54:aa:01:02",
    ],
)
def test_mac_forms_are_normalised(cell: str) -> None:
    assert parse_mac(cell) == "00:1b:54:aa:01:02"


@pytest.mark.parametrize(
    "cell", ["00:1b:54:aa:01", "00:1b-54:aa:01:02", "00:1b:54:aa:01:0g", "001b54aa01020", "x"]
)
def test_bad_macs_are_refused(cell: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        parse_mac(cell)


def test_status_words() -> None:
    assert [parse_status(w) for w in ("true", "UP", "1", "Yes")] == [True] * 4
    assert [parse_status(w) for w in ("False", "down", "0", "NO")] == [False] * 4
    with pytest.raises(ValueError, match="not a status"):
        parse_status("active")


def test_action_words() -> None:
    assert (parse_action("UPSERT"), parse_action("Delete")) == ("upsert", "delete")
    with pytest.raises(ValueError, match="not an action"):
        parse_action("remove")


def test_headers_match_ignoring_case_spaces_and_punctuation() -> None:
    assert normalize_header(" Serial No. ") == normalize_header("serial_no") == "serialno"
    plan = plan_header(
        ["S/N", "Host Name", "DEVICE-TYPE", "Tenant", "Mgmt IP", "MAC Address", "PO"],
        columns={},
        required=["serial_number"],
    )
    assert dict(plan.fields) == {
        "serial_number": 0,
        "name": 1,
        "device_type": 2,
        "organization": 3,
        "ip_address": 4,
        "mac_address": 5,
    }
    assert plan.extra == ((6, "PO"),)


def test_config_columns_win_over_aliases() -> None:
    config = CsvDropConfig(inbox=Path("in"), columns={"Name": "ignore", "Gerät": "name"})
    plan = plan_header(["serial", "name", "Gerät"], columns=config.columns, required=["name"])
    assert plan.fields == {"serial_number": 0, "name": 2}


def test_location_columns_are_the_parts_of_one_path_and_other_fields_stay_single() -> None:
    netbox = ["Name", "Status", "Tenant", "Site", "Location", "Rack", "Serial number"]
    plan = plan_header(netbox, columns={}, required=["serial_number"])
    assert plan.fields["location"] == 3
    assert plan.path == (3, 4)  # Rack stays an unused column until it is mapped
    assert (5, "Rack") in plan.extra
    mapped = plan_header(netbox, columns={"rack": "location"}, required=["serial_number"])
    assert mapped.path == (3, 4, 5)
    assert join_path(["a", "", "", "DC1", "", "R12", "S1"], mapped.path)[3] == "DC1 / R12"
    assert plan_header(["serial", "site"], columns={}, required=[]).path == ()
    with pytest.raises(HeaderError, match=r"'Name' \(1\) and 'Hostname' \(2\) both map to name"):
        plan_header(["Name", "Hostname", "serial"], columns={}, required=[])


def test_location_parts_are_joined_as_the_netbox_connector_joins_site_location_rack() -> None:
    assert NetBoxMapping().location_separator == PATH_SEPARATOR


def test_missing_required_column_names_the_headers_found() -> None:
    with pytest.raises(HeaderError, match=r"required field name \(headers found: 'serial', ''\)"):
        plan_header(["serial", ""], columns={}, required=["serial_number", "name"])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("serial,name,type\r\n", ","),
        ("serial;name;type\n", ";"),
        ("serial\tname\ttype\n", "\t"),
        ("serial|name|type\n", "|"),
        ('"serial;no",name,type\n', ","),  # a delimiter inside quotes does not count
        ("serial\n", ","),
    ],
)
def test_delimiter_is_sniffed_from_the_header(line: str, expected: str) -> None:
    assert sniff_delimiter(line) == expected


def test_options_are_validated() -> None:
    config = CsvDropConfig.model_validate({"inbox": "in", "delimiter": "tab"})
    assert config.delimiter == "\t"
    assert config.processed_path == Path("in/processed")
    assert config.ledger_path == Path("in/.syncd-ingested.json")
    assert CsvDropConfig(inbox=Path("in"), required_fields=("name",)).required_fields == (
        "serial_number",
        "name",
    )
    bad: list[dict[str, object]] = [
        {"encoding": "no-such-codec"},
        {"legacy_encoding": "auto"},
        {"columns": {"Serial": "serial"}},
        {"columns": {"---": "name"}},
        {"required_fields": ["hostname"]},
        {"max_error_ratio": 1.5},
        {"mode": "full"},
        {"delimiter": ":"},
        {"inbox_path": "x"},
    ]
    for options in bad:
        with pytest.raises(ValidationError):
            CsvDropConfig.model_validate({"inbox": "in"} | options)


def test_a_wrapped_header_cell_matches_and_a_control_character_refuses_the_header() -> None:
    plan = plan_header(["Serial\nNumber", "Host\r\nName"], columns={}, required=["serial_number"])
    assert dict(plan.fields) == {"serial_number": 0, "name": 1}
    with pytest.raises(
        HeaderError,
        match=r"column 2 header '\\x1b\[2Jname' contains control character \\x1b at position 1",
    ):
        plan_header(["serial", "\x1b[2Jname"], columns={}, required=["serial_number"])
