"""Merging several sources' records for one serial by per-field source priority."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.engine import Candidate, FieldPolicy, Policy
from syncd.records import DeviceRecord
from tests.test_engine_support import mirror, rec, run

NB_CSV = ("netbox", "csv")


def _policy(order: tuple[str, ...] = NB_CSV, **fields: FieldPolicy) -> Policy:
    return Policy.default(source_priority=order, fields=fields)


@pytest.mark.parametrize(
    ("records", "policy", "expected"),
    [
        pytest.param(
            [rec(location="Rack 1"), rec(source="csv", location="Dock")],
            _policy(),
            "Rack 1",
            id="global order: first source wins",
        ),
        pytest.param(
            [rec(source="csv", location="Dock"), rec(location="Rack 1")],
            _policy(),
            "Rack 1",
            id="record order does not matter",
        ),
        pytest.param(
            [rec(location=None), rec(source="csv", location="Dock")],
            _policy(),
            "Dock",
            id="None says nothing: next source",
        ),
        pytest.param(
            [rec(location="Rack 1"), rec(source="csv", location="Dock")],
            _policy(location=FieldPolicy("managed", sources=("csv",))),
            "Dock",
            id="field order beats global order",
        ),
        pytest.param(
            [
                rec(source="zeta", location="Z"),
                rec(source="alpha", location="A"),
                rec(source="beta", location="B"),
            ],
            _policy(order=("beta",)),
            "B",
            id="global order first",
        ),
        pytest.param(
            [rec(source="zeta", location="Z"), rec(source="alpha", location="A")],
            _policy(order=("beta",)),
            "A",
            id="unlisted sources by name",
        ),
        pytest.param(
            [rec(source="zeta", location="Z"), rec(source="alpha", location="A")],
            _policy(order=()),
            "A",
            id="no order at all: by name",
        ),
        pytest.param(
            [
                rec(source="x", location="X"),
                rec(source="csv", location="C"),
                rec(location=None),
            ],
            _policy(location=FieldPolicy("managed", sources=("netbox", "csv"))),
            "C",
            id="the field's own order, skipping a source that says nothing",
        ),
        pytest.param(
            [rec(wanted=False, location="Old"), rec(source="csv", location="Dock")],
            _policy(),
            "Dock",
            id="an unwanted record gives no values",
        ),
        pytest.param(
            [rec(action="delete", location="Old"), rec(source="csv", location="Dock")],
            _policy(),
            "Dock",
            id="a delete record gives no values",
        ),
    ],
)
def test_merge_picks_the_location_by_priority(
    records: list[DeviceRecord], policy: Policy, expected: str
) -> None:
    result = run(Candidate("SN1", records), policy=policy)
    [op] = result.operations
    assert op.kind == "create"
    assert op.changes["location"].after == expected


@pytest.mark.parametrize("records", [1, 2])
def test_a_field_naming_its_sources_takes_no_value_from_another(records: int) -> None:
    policy = _policy(location=FieldPolicy("managed", sources=("csv",)))
    candidates = [rec(location="Rack 1"), rec(source="csv", location=None)][:records]
    [op] = run(Candidate("SN1", candidates), policy=policy).operations
    assert op.kind == "create"
    assert "location" not in op.changes
    assert op.changes["name"].after == "sw-1"  # other fields still come from netbox


def test_merge_works_field_by_field() -> None:
    policy = _policy(location=FieldPolicy("managed", sources=("csv",)))
    records = [
        rec(name="nb-name", location="Rack 1", description=None),
        rec(source="csv", name="csv-name", location="Dock", description="from PO 17"),
    ]
    [op] = run(Candidate("SN1", records), policy=policy).operations
    after = {k: c.after for k, c in op.changes.items()}
    assert after == {
        "name": "nb-name",
        "type": 10,
        "organization": 1,
        "location": "Dock",
        "description": "from PO 17",
    }
    assert op.sources == ("csv", "netbox")
    assert op.origins == ("csv:SN1", "netbox:SN1")


def test_an_empty_name_says_nothing_so_the_next_source_names_it() -> None:
    records = [rec(name=""), rec(source="csv", name="sw-csv")]
    [op] = run(Candidate("SN1", records), policy=_policy()).operations
    assert op.changes["name"].after == "sw-csv"


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ({"location": ""}, None),  # the top source says "empty": that clears it
        ({"location": None}, "Dock"),  # the top source says nothing: the next one decides
    ],
)
def test_an_empty_string_is_a_value_that_wins(top: dict[str, Any], expected: object) -> None:
    records = [rec(**top), rec(source="csv", location="Dock")]
    entry = mirror(location="Old")
    [op] = run(Candidate("SN1", records, entry), policy=_policy()).operations
    assert op.kind == "update"
    assert op.changes["location"].after == expected


def test_the_same_sources_in_another_order_merge_the_same() -> None:
    policy = _policy(order=("csv", "netbox"))
    one = [rec("SN1", name="a"), rec("SN1", source="csv", name="b")]
    two = [rec("SN2", source="csv", name="b"), rec("SN2", name="a")]
    result = run(Candidate("SN1", one), Candidate("SN2", two), policy=policy)
    assert [op.changes["name"].after for op in result.operations] == ["b", "b"]


def test_only_the_winning_value_is_mapped() -> None:
    # csv's type is nonsense, but netbox outranks it: no reject
    records = [rec(device_type="ISR4331"), rec(source="csv", device_type="nonesuch")]
    [op] = run(Candidate("SN1", records), policy=_policy()).operations
    assert (op.kind, op.changes["type"].after) == ("create", 11)


@pytest.mark.parametrize("field", ["device_type", "organization"])
def test_an_empty_type_or_organization_says_nothing(field: str) -> None:
    records = [rec(**{field: ""}), rec(source="csv", device_type="ISR4331", organization="GLX")]
    [op] = run(Candidate("SN1", records), policy=_policy()).operations
    assert op.kind == "create"
    api = "type" if field == "device_type" else field
    assert op.changes[api].after == {"type": 11, "organization": 2}[api]
