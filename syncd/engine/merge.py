"""Per-field source priority: which record's value wins for each field.

For one field whose policy names ``sources``, only those sources may set it, in
that order (a source it does not name is ignored for that field). For any other
field, sources rank: first those the global ``source_priority`` names (in that
order), then all others by name. The first source in that order whose record gives
a value wins: ``None`` is "says nothing", so the next source is asked; an empty
string is a value ("this field is empty"), except for ``name``, ``device_type`` and
``organization``, which the inventory requires and cannot leave empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from syncd.engine.policy import Mode, Policy
from syncd.records import API_FIELD, DETAIL_ONLY, OPTIONAL_TEXT, RECORD_FIELDS, DeviceRecord

#: Fields the inventory requires, where a record's ``""`` counts as "says nothing".
EMPTY_IS_NOTHING: frozenset[str] = frozenset({"name", "device_type", "organization"})


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field's policy, prepared once per plan."""

    record_field: str
    api_field: str
    mode: Mode
    overwrite: bool
    own_order: tuple[str, ...]
    global_order: tuple[str, ...]
    detail_only: bool
    optional_text: bool
    empty_is_nothing: bool
    get: Any  # attrgetter: reads the field from a record
    #: turns a source value into its canonical write form (ids, addresses); may raise
    #: ``ValueError``; ``None`` when the value is kept as it is
    convert: Callable[[Any], object] | None

    def rank(self, source: str) -> tuple[int, int | str]:
        """Sort key of ``source`` for this field (lower wins)."""
        if source in self.own_order:
            return (0, self.own_order.index(source))
        if source in self.global_order:
            return (1, self.global_order.index(source))
        return (2, source)


def field_rules(
    policy: Policy, converters: Mapping[str, Callable[[Any], object]]
) -> tuple[FieldRule, ...]:
    """The rules of every field the policy does not ignore, in record-field order;
    ``converters`` by record field name."""
    rules = []
    for name in RECORD_FIELDS:
        fp = policy.field_policy(name)
        if fp.mode == "ignore":
            continue
        api = API_FIELD[name]
        rules.append(
            FieldRule(
                record_field=name,
                api_field=api,
                mode=fp.mode,
                overwrite=fp.on_manual_edit == "overwrite",
                own_order=fp.sources,
                global_order=policy.source_priority,
                detail_only=api in DETAIL_ONLY,
                optional_text=api in OPTIONAL_TEXT,
                empty_is_nothing=name in EMPTY_IS_NOTHING,
                get=attrgetter(name),
                convert=converters.get(name),
            )
        )
    return tuple(rules)


class RuleSet:
    """Some fields' rules, with readers that fetch all their values from a record in
    one call (a first run reads every field of a million records).

    ``read`` gives the values of ``rules``; ``read_plain`` those of ``plain_api``
    (fields kept as the source gives them), ``read_converted`` those of
    ``converted`` (fields mapped or parsed by the matching ``converters``).
    """

    __slots__ = (
        "converted",
        "converters",
        "plain_api",
        "read",
        "read_converted",
        "read_plain",
        "rules",
    )

    def __init__(self, rules: Sequence[FieldRule]) -> None:
        self.rules = tuple(rules)
        self.read = _reader([rule.record_field for rule in self.rules])
        plain = [rule for rule in self.rules if rule.convert is None]
        self.plain_api = tuple(rule.api_field for rule in plain)
        self.read_plain = _reader([rule.record_field for rule in plain])
        self.converted = tuple(rule for rule in self.rules if rule.convert is not None)
        self.converters = tuple(rule.convert for rule in self.rules if rule.convert is not None)
        self.read_converted = _reader([rule.record_field for rule in self.converted])


def _reader(names: Sequence[str]) -> Callable[[DeviceRecord], tuple[Any, ...]]:
    if len(names) > 1:
        return attrgetter(*names)
    if names:  # attrgetter of one name returns the value, not a 1-tuple
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    return lambda record: ()


class Merger:
    """Knows each field's priority order for a set of sources; the order for one
    combination is worked out once and reused, since a run sees few of them."""

    def __init__(self, rules: Sequence[FieldRule]) -> None:
        self._rules = rules
        self._orders: dict[tuple[str, ...], dict[str, tuple[int, ...]]] = {}

    def orders(self, records: Sequence[DeviceRecord]) -> Mapping[str, tuple[int, ...]]:
        """Per record field, the indexes of ``records`` from highest priority to lowest."""
        key = tuple(record.source for record in records)
        found = self._orders.get(key)
        if found is None:
            found = {rule.record_field: _order(rule, key) for rule in self._rules}
            self._orders[key] = found
        return found


def _order(rule: FieldRule, sources: tuple[str, ...]) -> tuple[int, ...]:
    allowed = [i for i in range(len(sources)) if not rule.own_order or sources[i] in rule.own_order]
    return tuple(sorted(allowed, key=lambda i: rule.rank(sources[i])))


def pick(
    rule: FieldRule, records: Sequence[DeviceRecord], order: Sequence[int]
) -> DeviceRecord | None:
    """The record whose value wins for ``rule``'s field, or ``None`` if none gives one."""
    get = rule.get
    for index in order:
        record = records[index]
        value = get(record)
        if value is None or (rule.empty_is_nothing and value == ""):
            continue
        return record
    return None
