"""Type and organization values -> inventory ids: policy map, then the catalogue."""

from __future__ import annotations

import pytest

from syncd.engine import Catalogue, OrgInfo, TypeInfo, UnmappedError
from syncd.engine.mapping import organization_resolver, type_resolver
from tests.test_engine_support import CATALOGUE

TYPE_MAP = {"cat9k": 10, "new-model": 42}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C9300-48P", 10),  # exact model
        ("router", 11),  # exact name
        ("c9300-48p", 10),  # model, any case
        ("ROUTER", 11),  # name, any case
        ("Firewall", 13),
        ("firewall", 13),
        ("cat9k", 10),  # the policy's map comes first
        ("new-model", 42),  # a mapped id the inventory has not shown yet
        (10, 10),  # ids the catalogue knows pass
        (42, 42),  # and ids the policy maps to
    ],
)
def test_type_resolves(value: str | int, expected: int) -> None:
    assert type_resolver(CATALOGUE, TYPE_MAP).resolve(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "switch",
            "device_type 'switch' is ambiguous: type ids 10, 12 match by name; "
            "map it in the policy",
        ),
        (
            "SWITCH",
            "device_type 'SWITCH' is ambiguous: type ids 10, 12 match by name (any case)",
        ),
        (
            "C9500",
            "device_type 'C9500' matches no known type (by model or name, in any case) "
            "and is not in the policy's map",
        ),
        ("CAT9K", "device_type 'CAT9K' matches no known type"),  # the map is exact
        (
            99,
            "device_type 99 is not a known type id "
            "(not seen in the inventory, not in the policy's map)",
        ),
        (0, "device_type 0 is not a known type id"),
        (True, "device_type True is neither a name nor an id"),
        (1.5, "device_type 1.5 is neither a name nor an id"),
        ("10", "device_type '10' matches no known type"),  # a digit string is not an id
    ],
)
def test_type_that_cannot_be_mapped_says_why(value: object, message: str) -> None:
    resolver = type_resolver(CATALOGUE, TYPE_MAP)
    with pytest.raises(UnmappedError) as info:
        resolver.resolve(value)
    assert str(info.value).startswith(message)


def test_an_exact_match_wins_over_a_case_insensitive_one() -> None:
    catalogue = Catalogue(types={1: TypeInfo(model="ab"), 2: TypeInfo(model="AB")})
    resolver = type_resolver(catalogue, {})
    assert (resolver.resolve("ab"), resolver.resolve("AB")) == (1, 2)
    with pytest.raises(UnmappedError, match="ambiguous: type ids 1, 2 match by model"):
        resolver.resolve("Ab")


def test_model_wins_over_name() -> None:
    catalogue = Catalogue(types={1: TypeInfo(name="X1"), 2: TypeInfo(model="X1")})
    assert type_resolver(catalogue, {}).resolve("X1") == 2


@pytest.mark.parametrize(("value", "ok"), [(7, True), (1, True), (0, False), (-3, False)])
def test_with_an_empty_catalogue_any_positive_id_passes(value: int, ok: bool) -> None:
    resolver = type_resolver(Catalogue(), {})
    if ok:
        assert resolver.resolve(value) == value
    else:
        with pytest.raises(UnmappedError):
            resolver.resolve(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Acme", 1), ("ACME", 1), ("acme", 1), ("GLX", 2), ("glx", 2), ("globex", 2), (2, 2)],
)
def test_organization_resolves_by_name_then_code(value: str | int, expected: int) -> None:
    assert organization_resolver(CATALOGUE, {}).resolve(value) == expected


def test_organization_name_wins_over_another_ones_code() -> None:
    catalogue = Catalogue(
        organizations={1: OrgInfo(name="North", code="N"), 2: OrgInfo(name="N", code="NN")}
    )
    assert organization_resolver(catalogue, {}).resolve("N") == 2


def test_unknown_organization_names_field_and_value() -> None:
    with pytest.raises(UnmappedError) as info:
        organization_resolver(CATALOGUE, {"Initech": 5}).resolve("Initrode")
    assert str(info.value) == (
        "organization 'Initrode' matches no known organization (by name or code, in any case) "
        "and is not in the policy's map"
    )


def test_a_failed_lookup_fails_the_same_way_every_time() -> None:
    resolver = type_resolver(CATALOGUE, {})
    messages = set()
    for _ in range(3):
        with pytest.raises(UnmappedError) as info:
            resolver.resolve("nope")
        messages.add(str(info.value))
        assert info.value.__traceback__ is not None
    assert len(messages) == 1
