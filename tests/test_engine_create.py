"""Creating devices the inventory lacks, and rejecting the ones it could not take."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.engine import Candidate, Catalogue, FieldPolicy, Policy
from tests.test_engine_support import only, rec, run


def test_create_carries_the_whole_body_in_write_form() -> None:
    record = rec(
        ip_address="2001:DB8::1",
        mac_address="AA-BB-CC-DD-EE-FF",
        location="Rack 4",
        description="core",
        firmware_version="17.9.4",
        status=True,  # ignored by default: the inventory owns status
    )
    result = run(Candidate("SN1", [record]))
    kind, changes = only(result)
    assert kind == "create"
    assert changes == {
        "name": (None, "sw-1"),
        "type": (None, 10),
        "organization": (None, 1),
        "ip_address": (None, "2001:db8::1"),
        "mac_address": (None, "aa:bb:cc:dd:ee:ff"),
        "location": (None, "Rack 4"),
        "description": (None, "core"),
        "firmware_version": (None, "17.9.4"),
    }
    op = result.operations[0]
    assert op.body()["serial_number"] == "SN1"
    assert op.sources == ("netbox",)
    assert op.origins == ("netbox:SN1",)
    assert result.counts["create"] == 1


def test_empty_values_are_left_out_of_a_create() -> None:
    record = rec(location="", description="", ip_address="", mac_address="")
    _, changes = only(run(Candidate("SN1", [record])))
    assert set(changes) == {"name", "type", "organization"}


@pytest.mark.parametrize(
    ("fields", "record", "expected"),
    [
        pytest.param(
            {"status": FieldPolicy("managed")},
            {"status": False},
            {"status": (None, False)},
            id="managed status, False included",
        ),
        pytest.param(
            {"location": FieldPolicy("create_only")},
            {"location": "Dock"},
            {"location": (None, "Dock")},
            id="create_only set on create",
        ),
        pytest.param(
            {"location": FieldPolicy("ignore")},
            {"location": "Dock"},
            {},
            id="ignored field left out",
        ),
    ],
)
def test_field_modes_on_create(
    fields: dict[str, FieldPolicy], record: dict[str, Any], expected: dict[str, Any]
) -> None:
    _, changes = only(run(Candidate("SN1", [rec(**record)]), policy=Policy.default(fields=fields)))
    extra = {k: v for k, v in changes.items() if k not in ("name", "type", "organization")}
    assert extra == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"name": None}, "cannot create: no source gives a value for name"),
        ({"name": ""}, "cannot create: no source gives a value for name"),
        ({"device_type": None}, "cannot create: no source gives a value for device_type"),
        ({"organization": None}, "cannot create: no source gives a value for organization"),
        (
            {"device_type": "C9500"},
            "device_type 'C9500' matches no known type (by model or name, in any case) "
            "and is not in the policy's map",
        ),
        (
            {"device_type": "switch"},
            "device_type 'switch' is ambiguous: type ids 10, 12 match by name; "
            "map it in the policy",
        ),
        (
            {"organization": "Initech", "name": None},
            "organization 'Initech' matches no known organization (by name or code, in any "
            "case) and is not in the policy's map; cannot create: no source gives a value for name",
        ),
        ({"ip_address": "10.0.0.1/24"}, "ip_address '10.0.0.1/24' is not an IP address"),
        ({"mac_address": "zz"}, "mac_address 'zz' is not a MAC address"),
    ],
)
def test_a_record_that_cannot_be_created_is_a_reject_with_the_reason(
    record: dict[str, Any], reason: str
) -> None:
    result = run(Candidate("SN1", [rec(**record)]))
    [op] = result.operations
    assert (op.kind, op.reason) == ("reject", reason)
    assert dict(op.changes) == {}
    assert op.origins == ("netbox:SN1",)
    assert result.counts["reject"] == 1
    assert result.counts["create"] == 0


def test_a_required_field_the_policy_ignores_makes_creates_rejects() -> None:
    policy = Policy.default(fields={"organization": FieldPolicy("ignore")})
    [op] = run(Candidate("SN1", [rec()]), policy=policy).operations
    assert op.kind == "reject"
    assert op.reason == (
        "cannot create: the policy ignores organization, which the inventory requires"
    )


def test_the_reject_blames_the_record_that_gave_the_bad_value() -> None:
    records = [
        rec(device_type="C9500", origin="netbox device 7"),
        rec(source="csv", device_type="C9300-48P", origin="po-17.csv:3"),
    ]
    policy = Policy.default(source_priority=("netbox", "csv"))
    [op] = run(Candidate("SN1", records), policy=policy).operations
    assert op.kind == "reject"
    assert (op.sources, op.origins) == (("netbox",), ("netbox device 7",))


def test_an_unmappable_value_does_not_stop_the_rest_of_the_plan() -> None:
    result = run(
        Candidate("SN1", [rec("SN1", device_type="nonesuch")]),
        Candidate("SN2", [rec("SN2")]),
    )
    assert [(op.serial_number, op.kind) for op in result.operations] == [
        ("SN1", "reject"),
        ("SN2", "create"),
    ]


@pytest.mark.parametrize(
    ("catalogue", "value", "kind"),
    [
        (Catalogue(), 7, "create"),  # nothing learned yet: trust a positive id
        (Catalogue(), -7, "reject"),
        (None, 10, "create"),  # the test catalogue knows 10
        (None, 7, "reject"),  # ...but not 7
    ],
)
def test_integer_type_ids(catalogue: Catalogue | None, value: int, kind: str) -> None:
    kwargs: dict[str, Any] = {} if catalogue is None else {"catalogue": catalogue}
    record = rec(device_type=value, organization=1 if catalogue is None else 5)
    [op] = run(Candidate("SN1", [record]), **kwargs).operations
    assert op.kind == kind


def test_the_policy_type_map_maps_source_values() -> None:
    policy = Policy.default(type_map={"Catalyst 9300": 10}, organization_map={"acme-corp": 2})
    record = rec(device_type="Catalyst 9300", organization="acme-corp")
    _, changes = only(run(Candidate("SN1", [record]), policy=policy))
    assert (changes["type"], changes["organization"]) == ((None, 10), (None, 2))
