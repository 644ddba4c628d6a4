"""The policy: defaults, validation a config author sees, and the fingerprint the store
uses to notice a policy change."""

from __future__ import annotations

import re
from typing import Any

import pytest

from syncd.engine import DEFAULT_FIELDS, FieldPolicy, Policy, SerialRules


def test_default_manages_descriptive_fields_and_leaves_status_to_the_inventory() -> None:
    policy = Policy.default()
    modes = {name: policy.field_policy(name).mode for name in DEFAULT_FIELDS}
    assert modes == {
        "name": "managed",
        "device_type": "managed",
        "organization": "managed",
        "status": "ignore",
        "ip_address": "managed",
        "mac_address": "managed",
        "location": "managed",
        "description": "managed",
        "firmware_version": "managed",
    }
    assert policy.adopt
    assert policy.delete_orphans
    assert (policy.orphan_grace_runs, policy.orphan_grace_seconds) == (3, 86400.0)
    assert (policy.max_delete_share, policy.min_source_ratio) == (0.10, 0.5)


def test_default_merges_field_overrides_over_the_defaults() -> None:
    policy = Policy.default(fields={"status": FieldPolicy("managed", ("netbox",))})
    assert policy.field_policy("status") == FieldPolicy("managed", ("netbox",))
    assert policy.field_policy("name").mode == "managed"


def test_a_field_the_policy_does_not_name_is_ignored() -> None:
    policy = Policy(fields={"name": FieldPolicy()})
    assert policy.field_policy("location").mode == "ignore"


def test_field_source_order_falls_back_to_the_global_order() -> None:
    policy = Policy.default(
        source_priority=("netbox", "csv"),
        fields={"location": FieldPolicy("managed", sources=("csv",))},
    )
    assert policy.source_order("location") == ("csv",)
    assert policy.source_order("name") == ("netbox", "csv")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": {"type": FieldPolicy()}}, "'type' is 'device_type' here"),
        ({"fields": {"colour": FieldPolicy()}}, "unknown field(s) 'colour'"),
        ({"source_priority": "netbox"}, "not one string"),
        ({"source_priority": ("netbox", "netbox")}, "names a source twice"),
        ({"orphan_grace_runs": -1}, "orphan_grace_runs: -1"),
        ({"orphan_grace_seconds": float("nan")}, "orphan_grace_seconds: nan must be"),
        ({"orphan_grace_seconds": 1e300}, "orphan_grace_seconds: 1e+300 must be"),
        ({"max_delete_share": float("nan")}, "max_delete_share: nan must be"),
        ({"max_delete_share": 1.5}, "max_delete_share: 1.5 must be a number between 0 and 1"),
        ({"min_source_ratio": -0.1}, "min_source_ratio"),
        ({"max_delete_count_without_gate": True}, "max_delete_count_without_gate"),
        ({"type_map": {"C9300": 0}}, "type_map['C9300']: 0 must be a positive integer id"),
        ({"organization_map": {"": 3}}, "organization_map: key ''"),
    ],
)
def test_bad_policy_values_fail_with_a_message_naming_them(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Policy.default(**kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FieldPolicy("sometimes"), "mode 'sometimes'"),  # type: ignore[arg-type]
        (lambda: FieldPolicy(on_manual_edit="ask"), "on_manual_edit 'ask'"),  # type: ignore[arg-type]
        (lambda: FieldPolicy(sources=("netbox", "")), "non-empty source names"),
        (lambda: SerialRules(case="title"), "serial case 'title'"),  # type: ignore[arg-type]
        (lambda: SerialRules(strip_prefixes="SN"), "strip_prefixes"),  # type: ignore[arg-type]
    ],
)
def test_bad_field_and_serial_rules_fail_on_construction(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_policy_mappings_cannot_be_changed_after_construction() -> None:
    source = {"C9300": 10}
    policy = Policy.default(type_map=source)
    source["C9300"] = 99  # the caller's dict is copied
    assert policy.type_map["C9300"] == 10
    with pytest.raises(TypeError):
        policy.type_map["X"] = 1  # type: ignore[index]


def test_fingerprint_is_stable_and_independent_of_dict_order() -> None:
    a = Policy.default(type_map={"a": 1, "b": 2})
    b = Policy.default(type_map={"b": 2, "a": 1})
    assert a.fingerprint() == b.fingerprint()
    # pinned: a change here re-plans every device of every user on upgrade, so it
    # must be a deliberate one (bump _FINGERPRINT_VERSION and this value together)
    assert Policy.default().fingerprint() == "d5de380e60875cf509b3ad24a7644a8c"


@pytest.mark.parametrize(
    "change",
    [
        {"adopt": False},
        {"delete_orphans": False},
        {"orphan_grace_runs": 4},
        {"orphan_grace_seconds": 1.0},
        {"max_delete_share": 0.2},
        {"max_delete_count_without_gate": 5},
        {"min_source_ratio": 0.9},
        {"source_priority": ("csv", "netbox")},
        {"serial": SerialRules(case="upper")},
        {"type_map": {"C9300": 10}},
        {"organization_map": {"ACME": 1}},
        {"fields": {"status": FieldPolicy("managed")}},
        {"fields": {"name": FieldPolicy("managed", on_manual_edit="overwrite")}},
        {"fields": {"name": FieldPolicy("create_only")}},
        {"fields": {"name": FieldPolicy("managed", sources=("csv",))}},
    ],
)
def test_fingerprint_changes_with_every_setting(change: dict[str, Any]) -> None:
    base = Policy.default(source_priority=("netbox", "csv"))
    changed = Policy.default(**{"source_priority": ("netbox", "csv"), **change})
    assert changed.fingerprint() != base.fingerprint()


def test_naming_an_ignored_field_does_not_change_the_fingerprint() -> None:
    named = Policy(fields={"name": FieldPolicy(), "status": FieldPolicy("ignore")})
    unnamed = Policy(fields={"name": FieldPolicy()})
    assert named.fingerprint() == unnamed.fingerprint()


def test_to_dict_is_plain_data() -> None:
    data = Policy.default(type_map={"x": 3}).to_dict()
    assert data["fields"]["status"] == {"mode": "ignore", "sources": [], "on_manual_edit": "report"}
    assert data["type_map"] == {"x": 3}
    assert data["serial"]["case"] == "preserve"


def test_lists_from_a_config_file_become_tuples() -> None:
    fp = FieldPolicy("managed", sources=["csv", "netbox"])  # type: ignore[arg-type]
    policy = Policy.default(source_priority=["netbox"], fields={"name": fp})
    assert fp.sources == ("csv", "netbox")
    assert policy.source_priority == ("netbox",)
    assert SerialRules(strip_prefixes=["SN:"]).strip_prefixes == ("SN:",)  # type: ignore[arg-type]
