"""The three-way compare of devices syncd owns, PATCH-sized updates, and adoption."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.engine import Candidate, FieldPolicy, Policy
from tests.test_engine_support import ABSENT, INVENTORY_DEFAULTS, mirror, only, rec, run

API = {"device_type": "type"}
STATUS_MANAGED = {"status": FieldPolicy("managed")}
OVERWRITE = "overwrite"

# (record field, source value, inventory value, last written, on_manual_edit,
#  expected: None = nothing to do, else (kind, before, after))
ROWS: list[Any] = [
    # -- the three-way rule
    ("location", "A", "A", "A", "report", None),
    ("location", "B", "A", "A", "report", ("update", "A", "B")),
    ("location", "B", "A", ABSENT, "report", ("update", "A", "B")),  # never written
    ("location", "A", "Hand", "A", "report", ("conflict", "Hand", "A")),  # hand edit kept
    ("location", "B", "Hand", "A", "report", ("conflict", "Hand", "B")),
    ("location", "A", "Hand", "A", OVERWRITE, ("update", "Hand", "A")),
    ("location", "B", "B", "A", "report", None),  # edited by hand to what the source says
    # -- empty: None and "" are one value
    ("location", "", None, None, "report", None),
    ("location", "", "", ABSENT, "report", None),
    ("location", None, "A", "A", "report", None),  # the source says nothing: left alone
    ("location", "", "A", "A", "report", ("update", "A", None)),  # the source says empty
    ("location", "", "Hand", None, "report", ("conflict", "Hand", None)),
    ("location", "B", "", None, "report", ("update", "", "B")),
    # -- addresses compared canonically
    ("ip_address", "2001:db8::1", "2001:DB8::1", "2001:DB8::1", "report", None),
    ("ip_address", "2001:DB8:0::1", "2001:db8::1", "2001:db8::1", "report", None),
    (
        "ip_address",
        "10.0.0.2",
        "10.0.0.1",
        "10.0.0.1",
        "report",
        ("update", "10.0.0.1", "10.0.0.2"),
    ),
    (
        "ip_address",
        "10.0.0.9",
        "2001:DB8::1",
        "2001:db8::1",
        "report",
        ("update", "2001:DB8::1", "10.0.0.9"),
    ),
    (
        "ip_address",
        "10.0.0.9",
        "10.0.0.5",
        "10.0.0.1",
        "report",
        ("conflict", "10.0.0.5", "10.0.0.9"),
    ),
    ("ip_address", "", "10.0.0.1", "10.0.0.1", "report", ("update", "10.0.0.1", None)),
    ("mac_address", "aa-bb-cc-dd-ee-ff", "AA:BB:CC:DD:EE:FF", ABSENT, "report", None),
    ("mac_address", "AABBCCDDEEFF", ABSENT, "aa:bb:cc:dd:ee:ff", "report", None),
    # -- detail-only fields: the list does not show them, so what syncd wrote stands in
    ("description", "core", ABSENT, "core", "report", None),
    ("description", "edge", ABSENT, "core", "report", ("update", "core", "edge")),
    ("description", "edge", ABSENT, ABSENT, "report", ("update", None, "edge")),  # unknown
    ("description", "", ABSENT, ABSENT, "report", None),  # no blind clear of the unknown
    ("description", "core", "Hand", "core", "report", ("conflict", "Hand", "core")),  # read
    ("firmware_version", "17.9", ABSENT, "17.6", "report", ("update", "17.6", "17.9")),
    # -- name, type, organization
    ("name", "sw-2", "sw-1", "sw-1", "report", ("update", "sw-1", "sw-2")),
    ("name", "sw-1", "sw-1", "sw-1", "report", None),
    ("name", "", "sw-1", "sw-1", "report", None),  # a name cannot be cleared: says nothing
    ("device_type", "ISR4331", 10, 10, "report", ("update", 10, 11)),
    ("device_type", "C9300-48P", 11, 10, "report", ("conflict", 11, 10)),
    ("device_type", 10, 10, 10, "report", None),
    ("organization", "GLX", 1, 1, "report", ("update", 1, 2)),
    ("organization", "acme", 1, 1, "report", None),
]


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{r[0]}:{r[1]!r}/inv={r[2]!r}/w={r[3]!r}/{r[4]}" for r in ROWS]
)
def test_three_way_compare(row: tuple[Any, ...]) -> None:
    field, source, inventory, written, edit, expected = row
    api = API.get(field, field)
    base = {k: v for k, v in INVENTORY_DEFAULTS.items() if k != "status"}
    if written is not ABSENT:
        base[api] = written
    else:
        base.pop(api, None)
    values = {api: inventory}
    entry = mirror(written=base, **values)
    policy = Policy.default(fields={field: FieldPolicy("managed", on_manual_edit=edit)})
    result = run(Candidate("SN1", [rec(**{field: source})], entry), policy=policy)
    if expected is None:
        assert result.operations == []
        assert result.counts["unchanged"] == 1
        return
    kind, before, after = expected
    assert only(result) == (kind, {api: (before, after)})


def test_an_unknown_current_value_is_marked_as_such() -> None:
    entry = mirror(written={"name": "sw-1", "type": 10, "organization": 1})
    result = run(Candidate("SN1", [rec(description="edge")], entry))
    change = result.operations[0].changes["description"]
    assert (change.before, change.after, change.before_known) == (None, "edge", False)


@pytest.mark.parametrize(
    ("fields", "inventory", "source", "expected"),
    [
        (STATUS_MANAGED, {"status": True}, {"status": False}, {"status": (True, False)}),
        ({}, {"status": True}, {"status": False}, None),  # the inventory owns status
        ({"location": FieldPolicy("ignore")}, {"location": "A"}, {"location": "B"}, None),
        ({"location": FieldPolicy("create_only")}, {"location": "A"}, {"location": "B"}, None),
        ({"location": FieldPolicy("create_only")}, {"location": None}, {"location": "B"}, None),
    ],
)
def test_field_modes_on_an_owned_device(
    fields: dict[str, FieldPolicy],
    inventory: dict[str, Any],
    source: dict[str, Any],
    expected: dict[str, Any] | None,
) -> None:
    result = run(
        Candidate("SN1", [rec(**source)], mirror(**inventory)),
        policy=Policy.default(fields=fields),
    )
    if expected is None:
        assert result.operations == []
    else:
        assert only(result) == ("update", expected)


def test_an_update_carries_only_the_changed_fields() -> None:
    entry = mirror(location="A", ip_address="10.0.0.1")
    record = rec(location="B", ip_address="10.0.0.1", description=None)
    result = run(Candidate("SN1", [record], entry))
    assert only(result) == ("update", {"location": ("A", "B")})
    assert result.operations[0].body() == {"location": "B"}


def test_a_hand_edit_is_reported_while_the_other_fields_still_update() -> None:
    entry = mirror(
        name="renamed-by-hand",
        location="A",
        written={"name": "sw-1", "type": 10, "organization": 1, "location": "A"},
    )
    record = rec(name="sw-1", location="B", origin="netbox device 4")
    result = run(Candidate("SN1", [record], entry))
    assert [op.kind for op in result.operations] == ["update", "conflict"]
    update, conflict = result.operations
    assert {k: (c.before, c.after) for k, c in update.changes.items()} == {"location": ("A", "B")}
    assert {k: (c.before, c.after) for k, c in conflict.changes.items()} == {
        "name": ("renamed-by-hand", "sw-1")
    }
    assert conflict.reason == (
        "changed by hand in the inventory, kept: name: inventory has 'renamed-by-hand', "
        "syncd last wrote 'sw-1', source 'netbox' wants 'sw-1'"
    )
    assert conflict.origins == ("netbox device 4",)
    assert (result.counts["update"], result.counts["conflict"]) == (1, 1)


def test_an_owned_device_with_an_unmappable_value_is_rejected_not_updated() -> None:
    entry = mirror(location="A")
    result = run(Candidate("SN1", [rec(device_type="nonesuch", location="B")], entry))
    [op] = result.operations
    assert op.kind == "reject"
    assert "device_type 'nonesuch' matches no known type" in op.reason


def test_a_value_the_inventory_already_holds_is_not_mapped_again() -> None:
    # type id 99 is unknown to the catalogue, but the inventory holds it: nothing to do
    entry = mirror(type=99, written={"name": "sw-1", "type": 99, "organization": 1})
    assert run(Candidate("SN1", [rec(device_type=99)], entry)).operations == []


# -- adopt ---------------------------------------------------------------------------------


def _unmanaged(**values: Any) -> Any:
    return mirror(ownership="unmanaged", written={}, **values)


def test_adopt_takes_over_a_matching_device_and_patches_what_differs() -> None:
    entry = _unmanaged(location="Old", ip_address="10.0.0.1")
    record = rec(location="New", ip_address="10.0.0.1")
    result = run(Candidate("SN1", [record], entry))
    assert only(result) == ("adopt", {"location": ("Old", "New")})
    assert result.operations[0].reason == "exists, not managed: adopted"
    assert result.counts["adopt"] == 1


def test_adopt_with_nothing_to_change_is_still_an_adopt() -> None:
    result = run(Candidate("SN1", [rec()], _unmanaged()))
    assert only(result) == ("adopt", {})
    assert result.operations[0].sources == ("netbox",)


def test_adopt_disabled_skips_with_the_reason() -> None:
    result = run(
        Candidate("SN1", [rec(location="New")], _unmanaged()), policy=Policy.default(adopt=False)
    )
    [op] = result.operations
    assert (op.kind, op.reason, dict(op.changes)) == (
        "skip",
        "exists, not managed (adopt disabled)",
        {},
    )
    assert result.counts["skip"] == 1


@pytest.mark.parametrize(
    ("inventory", "source", "expected"),
    [
        ({"location": None}, "Dock", {"location": (None, "Dock")}),  # known empty: filled
        ({"location": ""}, "Dock", {"location": ("", "Dock")}),
        ({"location": "Rack"}, "Dock", {}),  # has a value: left alone
        ({}, "Dock", {}),  # never seen (detail-only-like): left alone
    ],
)
def test_adopt_fills_create_only_fields_only_where_the_inventory_is_empty(
    inventory: dict[str, Any], source: str, expected: dict[str, Any]
) -> None:
    policy = Policy.default(fields={"location": FieldPolicy("create_only")})
    result = run(Candidate("SN1", [rec(location=source)], _unmanaged(**inventory)), policy=policy)
    assert only(result) == ("adopt", expected)


def test_adopt_of_an_unmappable_record_is_a_reject() -> None:
    result = run(Candidate("SN1", [rec(organization="Initrode")], _unmanaged()))
    assert [op.kind for op in result.operations] == ["reject"]


def test_an_adopted_device_is_updated_like_a_created_one() -> None:
    entry = mirror(ownership="adopted", location="A")
    assert only(run(Candidate("SN1", [rec(location="B")], entry))) == (
        "update",
        {"location": ("A", "B")},
    )
