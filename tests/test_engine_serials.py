"""Serial normalisation: exact unless a rule says otherwise, and rules applied in their
documented order."""

from __future__ import annotations

import pytest

from syncd.engine import EmptySerialError, SerialRules, group_by_serial, normalize_serial
from tests.test_engine_support import rec

DEFAULT = SerialRules()


@pytest.mark.parametrize(
    ("raw", "rules", "expected"),
    [
        # the default: trim only; case is the API's business (it is case-sensitive)
        ("FOC1234X0AB", DEFAULT, "FOC1234X0AB"),
        ("  foc1234x0ab\t", DEFAULT, "foc1234x0ab"),
        ("T8JKSZP", DEFAULT, "T8JKSZP"),
        ("t8jkszp", DEFAULT, "t8jkszp"),
        (" a b ", DEFAULT, "a b"),  # inner spaces are part of the serial
        (" x ", SerialRules(strip=False), " x "),
        # case, only when configured
        ("t8jkszp", SerialRules(case="upper"), "T8JKSZP"),
        ("T8JKSZP", SerialRules(case="lower"), "t8jkszp"),
        # remove_chars anywhere
        ("AB-12-34", SerialRules(remove_chars="-"), "AB1234"),
        ("AB-12 34", SerialRules(remove_chars="- "), "AB1234"),
        # prefixes: first match, once, exact case, trimmed after
        ("S/N: FOC1", SerialRules(strip_prefixes=("S/N:",)), "FOC1"),
        ("SN:SN:FOC1", SerialRules(strip_prefixes=("SN:",)), "SN:FOC1"),
        ("sn:FOC1", SerialRules(strip_prefixes=("SN:",)), "sn:FOC1"),
        ("SN-FOC1", SerialRules(strip_prefixes=("SN", "SN-")), "-FOC1"),
        ("SN-FOC1", SerialRules(strip_prefixes=("SN-", "SN")), "FOC1"),
        ("S/N FOC1", SerialRules(strip_prefixes=("S/N",), strip=False), " FOC1"),
        # order: remove_chars before prefixes, case last
        ("S-N:foc1", SerialRules(remove_chars="-", strip_prefixes=("SN:",)), "foc1"),
        ("sn:foc1", SerialRules(strip_prefixes=("SN:",), case="upper"), "SN:FOC1"),
    ],
)
def test_normalize_serial(raw: str, rules: SerialRules, expected: str) -> None:
    assert normalize_serial(raw, rules) == expected


@pytest.mark.parametrize(
    ("raw", "rules"),
    [
        ("", DEFAULT),
        ("   ", DEFAULT),
        ("SN:", SerialRules(strip_prefixes=("SN:",))),
        ("--", SerialRules(remove_chars="-")),
    ],
)
def test_a_serial_left_empty_is_an_error_naming_it(raw: str, rules: SerialRules) -> None:
    with pytest.raises(EmptySerialError) as info:
        normalize_serial(raw, rules)
    assert repr(raw) in str(info.value)


def test_group_by_serial_keeps_each_records_original_serial() -> None:
    records = [
        rec("T8JKSZP", origin="netbox device 1"),
        rec("t8jkszp", origin="netbox device 2"),
        rec("ABC", source="csv"),
        rec("  ", source="csv", origin="po.csv:4"),
    ]
    groups, empty = group_by_serial(records, SerialRules(case="upper"))
    assert sorted(groups) == ["ABC", "T8JKSZP"]
    assert [r.serial_number for r in groups["T8JKSZP"]] == ["T8JKSZP", "t8jkszp"]
    assert [(r.origin, why) for r, why in empty] == [
        ("po.csv:4", "serial '  ' is empty after normalisation")
    ]


def test_group_by_serial_by_default_keeps_case_variants_apart() -> None:
    groups, _ = group_by_serial([rec("T8JKSZP"), rec("t8jkszp")], DEFAULT)
    assert sorted(groups) == ["T8JKSZP", "t8jkszp"]
