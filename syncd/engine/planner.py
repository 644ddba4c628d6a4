"""``plan()``: candidates + policy + catalogue + context -> a ``Plan``.

Per serial, in this order:

1. **Collision**: two or more records from one source -> a ``conflict``, nothing
   written for the serial.
2. **Not wanted** (no record, or only ``wanted=False`` / ``action="delete"``): an
   owned device in the inventory is an orphan; its tombstone starts or advances, and
   it is deleted once missing for ``orphan_grace_runs`` runs *and*
   ``orphan_grace_seconds``. An unmanaged device is never deleted (only counted).
3. **Wanted**: the tombstone is cleared; each field's value is merged by source
   priority, mapped (type/organization ids) and put in canonical form. A value that
   cannot be mapped or is invalid makes the serial a ``reject`` (nothing written);
   a value exactly equal to the inventory's is settled before mapping, since the
   inventory holds it (an id the catalogue has not learned yet is no reason to
   reject a device that needs nothing).
   Then: absent from the inventory -> ``create`` (needs name, type, organization);
   present and unmanaged -> ``adopt`` (with a PATCH of what differs) if the policy
   allows, else ``skip``; present and owned -> ``update`` of the changed fields.
4. **Three-way compare** per managed field: inventory value ``c``, desired ``d``,
   last written ``w``. ``c == d``: nothing. ``w`` never written or ``c == w``:
   update. Otherwise someone edited it by hand: ``conflict`` (the inventory keeps
   its value) unless the field says ``on_manual_edit="overwrite"``. A field whose
   ``(c, d)`` a person decided to keep (``MirrorEntry.kept``) is settled: nothing.
   ``create_only`` fields are written on create, and on adopt only where the
   inventory is known to be empty; ``ignore`` fields never.

Detail-only fields (``description``, ``mac_address``, ``firmware_version``) are
absent from the list endpoint. When the mirror has no read value for one, the last
value syncd wrote stands for the inventory's (a hand edit of it goes unseen until
a detail read fills the mirror); when syncd never wrote it either, the value is
unknown: a wanted value is written (``before_known=False``), an empty one is left.

The caller must pass every serial that has a tombstone on every run (or its count of
missed runs does not advance), and a serial at most once. Each call is one run.

Hot paths are written for speed (a first run plans every serial): records are read
with one ``attrgetter`` call, a single-record create is built in one comprehension,
and ``FieldChange``/``Operation`` tuples are made with ``tuple.__new__``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from syncd.engine.gates import check_gates
from syncd.engine.mapping import UnmappedError, organization_resolver, type_resolver
from syncd.engine.merge import FieldRule, Merger, RuleSet, field_rules, pick
from syncd.engine.model import (
    Candidate,
    Catalogue,
    FieldChange,
    MirrorEntry,
    Operation,
    OperationKind,
    Plan,
    PlanContext,
    SettleField,
    Tombstone,
)
from syncd.engine.policy import Policy
from syncd.engine.values import InvalidValueError, current_value, desired_ip, desired_mac
from syncd.records import API_FIELD, CASE_COLLISION, DETAIL_ONLY, RECORD_FIELDS, DeviceRecord

_REQUIRED_ON_CREATE: tuple[str, ...] = ("name", "device_type", "organization")
_INTERNED: frozenset[str] = frozenset({"device_type", "organization"})
_MISSING: Any = object()
_by_serial = attrgetter("serial_number")


# Builds a NamedTuple without its Python-level ``__new__``, at half the cost: a first
# run builds one ``FieldChange`` per field per device.
_new = tuple.__new__
_NO_CHANGES: Mapping[str, FieldChange] = MappingProxyType({})


#: Operations handed to a ``sink`` at a time.
SINK_CHUNK = 5000

Sink = Callable[[list[Operation]], None]


def plan(
    candidates: Iterable[Candidate],
    policy: Policy,
    catalogue: Catalogue,
    context: PlanContext,
    *,
    sink: Sink | None = None,
    settled: int = 0,
    ordered: bool = False,
) -> Plan:
    """Work out what to do for each candidate serial (see the module docstring).

    Pure: the result depends only on the arguments. Operations come sorted by serial,
    then by kind; the safety gates are applied last (a held plan lists everything).
    Raises ``ValueError`` if a serial appears in two candidates.

    With a ``sink``, the operations are handed to it in chunks as they are planned
    instead of being kept (the returned plan's ``operations`` is then empty; its
    counts, tombstones and gates are whole): a first run of a million serials never
    holds a million operations. Each chunk is sorted by serial; the chunks follow the
    candidates' order (the store's come sorted by serial).

    ``settled``: how many more candidates the store found unchanged by
    ``settle_fields`` and did not pass; they are counted as candidates and unchanged.

    ``ordered``: the candidates come in strictly increasing order of serial (as the
    store gives them), which is checked instead of remembering every serial seen: a
    first run's million serials are not all held for the check (``ValueError`` if the
    order breaks, which a repeated serial does).

    The cyclic garbage collector is paused while it runs (as ``timeit`` does) and
    restored after: planning builds millions of small objects, none in a cycle, and
    the full collections they trigger would more than double the time.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        planner = _Planner(policy, catalogue, context)
        seen: set[str] = set()
        previous: str | None = None
        count = 0
        add = planner.add
        for candidate in candidates:
            serial = candidate.serial_number
            if ordered:
                if previous is not None and serial <= previous:
                    raise ValueError(f"serial {serial!r} comes after {previous!r}: not ordered")
                previous = serial
            elif serial in seen:
                raise ValueError(f"serial {serial!r} is in two candidates")
            else:
                seen.add(serial)
            count += 1
            add(candidate)
            if sink is not None and len(planner.ops) >= SINK_CHUNK:
                planner.flush(sink)
        if sink is not None:
            planner.flush(sink)
        planner.counts["unchanged"] += settled
        return planner.finish(count + settled)
    finally:
        if paused:
            gc.enable()


def _converters(policy: Policy, catalogue: Catalogue) -> dict[str, Any]:
    """The converter of each mapped or parsed field (record field name -> function)."""
    return {
        "device_type": type_resolver(catalogue, policy.type_map).resolve,
        "organization": organization_resolver(catalogue, policy.organization_map).resolve,
        "ip_address": desired_ip,
        "mac_address": desired_mac,
    }


def settle_fields(policy: Policy, catalogue: Catalogue) -> tuple[SettleField, ...] | None:
    """What makes an owned serial "unchanged" under ``policy``, for a store to settle
    such serials set-based instead of loading them (``plan(settled=...)``).

    A serial with one record (wanted, an upsert, no ``extra``), no tombstone and an
    owned device present in the mirror is unchanged when every returned field is
    settled: the record says nothing (``None``, or ``""`` where ``empty_is_nothing``),
    or its value equals the mirror's (for a ``detail_only`` field absent from the
    values: the last written one), or, for an ``empty_clears`` field, the record says
    ``""`` and the mirror holds ``null``, or, for a mapped field, its text ``resolve``s
    to the mirror's id. Those are the shortcuts ``_compare`` takes before anything can
    change, so the engine would plan nothing for it. ``None`` when a field names its
    own sources (then even one record's values may not all be used)."""
    converters = _converters(policy, catalogue)
    rules = field_rules(policy, converters)
    if any(rule.own_order for rule in rules):
        return None
    return tuple(
        SettleField(
            position=RECORD_FIELDS.index(rule.record_field),
            api=rule.api_field,
            detail_only=rule.detail_only,
            empty_is_nothing=rule.empty_is_nothing,
            empty_clears=rule.optional_text and rule.convert is None,
            resolve=converters[rule.record_field] if rule.record_field in _INTERNED else None,
        )
        for rule in rules
        if rule.mode == "managed"
    )


def is_settled(
    settle: Sequence[SettleField],
    payload: object,
    values: Mapping[str, object],
    written: Callable[[], Mapping[str, object]],
) -> bool:
    """Whether one record (its stored ``payload``: the values in ``RECORD_FIELDS``
    order) settles every ``settle`` field against an owned device's mirror ``values``
    (``written`` gives the last written ones, read only if needed): the test
    ``settle_fields`` describes, for a store to run over its rows."""
    if not isinstance(payload, list) or len(payload) != len(RECORD_FIELDS):
        return False  # not a plain record (``extra``, or an older encoding)
    last: Mapping[str, object] | None = None
    for field in settle:
        raw = payload[field.position]
        if raw is None or (field.empty_is_nothing and raw == ""):
            continue
        current = values.get(field.api, _MISSING)
        if current is _MISSING and field.detail_only:
            last = written() if last is None else last
            current = last.get(field.api, _MISSING)
        if current is _MISSING:
            return False
        if raw == current or (field.empty_clears and raw == "" and current is None):
            continue
        if field.resolve is None or not isinstance(raw, str):
            return False
        try:
            if field.resolve(raw) != current:
                return False
        except ValueError:
            return False
    return True


class _RejectError(Exception):
    """Internal: a serial's values cannot be written (carries the records to blame)."""

    def __init__(self, problems: list[tuple[str, str]], records: Sequence[DeviceRecord]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.records = records


def _is_wanted(record: DeviceRecord) -> bool:
    return record.wanted and record.action == "upsert"


class _Planner:
    """One run's planning: the prepared policy, and the plan as it grows."""

    def __init__(self, policy: Policy, catalogue: Catalogue, context: PlanContext) -> None:
        self.policy = policy
        self.context = context
        self.rules = field_rules(policy, _converters(policy, catalogue))
        self.all_fields = RuleSet(self.rules)
        # A field that names its sources must not take a value from another one, so
        # the single-record shortcuts (which read every field of the record) are off.
        self.restricted = any(rule.own_order for rule in self.rules)
        self.managed = RuleSet([rule for rule in self.rules if rule.mode == "managed"])
        self.merger = Merger(self.rules)
        # Creates share one FieldChange per type/organization value (a run sees few):
        # a dict hit instead of a lookup and a new object, per field of every create.
        self.interned: tuple[dict[object, FieldChange] | None, ...] = tuple(
            {} if rule.record_field in _INTERNED else None for rule in self.all_fields.converted
        )
        active = {rule.record_field for rule in self.rules}
        self.ignored_required = frozenset(n for n in _REQUIRED_ON_CREATE if n not in active)
        self.grace = timedelta(seconds=policy.orphan_grace_seconds)
        self.ops: list[Operation] = []
        self.tombstones: dict[str, Tombstone | None] = {}
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "create",
                "adopt",
                "update",
                "delete",
                "conflict",
                "reject",
                "skip",
                "unchanged",
                "orphans_waiting",
                "orphans_kept",
                "orphans_unmanaged",
            ),
            0,
        )

    # -- per candidate ---------------------------------------------------------------------

    def add(self, candidate: Candidate) -> None:
        records = candidate.records
        if len(records) == 1:
            only = records[0]
            wanted: Sequence[DeviceRecord] = (
                records if only.wanted and only.action == "upsert" else ()
            )
        elif records and self._collides(candidate):
            return
        if any(r.extra for r in records) and self._case_collides(candidate):
            return
        wanted = [r for r in records if _is_wanted(r)]
        if not wanted:
            self._unwanted(candidate)
            return
        serial = candidate.serial_number
        if candidate.tombstone is not None:
            self.tombstones[serial] = None
        mirror = candidate.mirror
        try:
            if mirror is None:
                self._create(serial, wanted)
            elif mirror.ownership != "unmanaged":
                self._compare(serial, wanted, mirror, adopting=False)
            elif self.policy.adopt:
                self._compare(serial, wanted, mirror, adopting=True)
            else:
                reason = "exists, not managed (adopt disabled)"
                self._emit("skip", serial, reason=reason, records=wanted)
        except _RejectError as exc:
            self._emit("reject", serial, reason=str(exc), records=exc.records)

    def _collides(self, candidate: Candidate) -> bool:
        by_source: dict[str, list[DeviceRecord]] = {}
        for record in candidate.records:
            by_source.setdefault(record.source, []).append(record)
        clashes = {source: recs for source, recs in by_source.items() if len(recs) > 1}
        if not clashes:
            return False
        parts = []
        blamed: list[DeviceRecord] = []
        for source in sorted(clashes):
            recs = clashes[source]
            blamed.extend(recs)
            listed = ", ".join(f"{r.origin or '?'} (serial {r.serial_number!r})" for r in recs)
            parts.append(f"source {source!r} has {len(recs)} records for it: {listed}")
        self._emit(
            "conflict",
            candidate.serial_number,
            reason="serial collision: " + "; ".join(parts) + "; nothing written",
            records=blamed,
        )
        if candidate.tombstone is not None and any(map(_is_wanted, candidate.records)):
            self.tombstones[candidate.serial_number] = None
        return True

    def _case_collides(self, candidate: Candidate) -> bool:
        """A source marked this serial as differing only by case from another of its own."""
        parts = []
        blamed: list[DeviceRecord] = []
        for record in candidate.records:
            others = [value for key, value in record.extra if key == CASE_COLLISION]
            if others:
                blamed.append(record)
                spelled = ", ".join(repr(o) for o in sorted(others))
                parts.append(
                    f"source {record.source!r} ({record.origin or '?'}) also lists {spelled}"
                )
        if not blamed:
            return False
        self._emit(
            "conflict",
            candidate.serial_number,
            reason="serial differs only by case from another device: "
            + "; ".join(parts)
            + "; the inventory is case-sensitive, so nothing is written until a person decides",
            records=blamed,
        )
        if candidate.tombstone is not None and any(map(_is_wanted, candidate.records)):
            self.tombstones[candidate.serial_number] = None
        return True

    def _unwanted(self, candidate: Candidate) -> None:
        serial = candidate.serial_number
        mirror = candidate.mirror
        previous = candidate.tombstone
        if mirror is None or mirror.ownership == "unmanaged":
            if mirror is not None:
                self.counts["orphans_unmanaged"] += 1
            if previous is not None:
                self.tombstones[serial] = None
            return
        now = self.context.now
        if previous is None:
            tombstone = Tombstone(now, 1)
        else:
            first = previous.first_missing
            if first.tzinfo is None:
                first = first.replace(tzinfo=UTC)
            tombstone = Tombstone(first, previous.runs_missing + 1)
        self.tombstones[serial] = tombstone
        if not self.policy.delete_orphans:
            self.counts["orphans_kept"] += 1
            return
        if (
            tombstone.runs_missing < self.policy.orphan_grace_runs
            or now - tombstone.first_missing < self.grace
        ):
            self.counts["orphans_waiting"] += 1
            return
        unwanted_by = [r for r in candidate.records if not _is_wanted(r)]
        said = ", ".join(sorted({r.source for r in unwanted_by}))
        self._emit(
            "delete",
            serial,
            changes=_last_values(mirror),
            reason=(
                f"orphan: no source has wanted it for {tombstone.runs_missing} run(s) since "
                f"{_iso(tombstone.first_missing)}"
                + (f"; marked unwanted by {said}" if said else "")
                + f" (ownership: {mirror.ownership})"
            ),
            records=unwanted_by,
        )

    # -- wanted ----------------------------------------------------------------------------

    def _sourced(
        self, ruleset: RuleSet, wanted: Sequence[DeviceRecord]
    ) -> Iterable[tuple[FieldRule, Any, DeviceRecord]]:
        """Each field's winning raw value and its record (raw ``None`` may come along
        when a single record is read: the callers skip it)."""
        if len(wanted) == 1 and not self.restricted:  # the common case: nothing to weigh
            record = wanted[0]
            return zip(ruleset.rules, ruleset.read(record), repeat(record), strict=False)
        # several records: ``pick`` skips the ones that say nothing
        orders = self.merger.orders(wanted)
        found = []
        for rule in ruleset.rules:
            winner = pick(rule, wanted, orders[rule.record_field])
            if winner is not None:
                found.append((rule, rule.get(winner), winner))
        return found

    def _create(self, serial: str, wanted: Sequence[DeviceRecord]) -> None:
        if len(wanted) > 1 or self.restricted:
            self._create_merged(serial, wanted)
            return
        # One record, the bulk of a first run: no priorities to weigh, so the fields kept
        # as given are copied in one comprehension. Empty values are left out: there is
        # nothing to clear on a new device.
        record = wanted[0]
        fields = self.all_fields
        changes: dict[str, FieldChange] = {
            api: _new(FieldChange, (None, raw, True))
            for api, raw in zip(fields.plain_api, fields.read_plain(record), strict=True)
            if raw is not None and raw != ""
        }
        problems: list[tuple[str, str]] = []
        for rule, convert, interned, raw in zip(
            fields.converted,
            fields.converters,
            self.interned,
            fields.read_converted(record),
            strict=True,
        ):
            if raw is None or raw == "":
                continue
            if interned is not None:
                change = interned.get(raw)
                if change is not None and raw.__class__ is not bool:  # True == 1 as a key
                    changes[rule.api_field] = change
                    continue
            try:
                value = convert(raw)
            except (UnmappedError, InvalidValueError) as exc:
                problems.append((rule.record_field, str(exc)))
                continue
            if value is not None:
                change = _new(FieldChange, (None, value, True))
                if interned is not None:
                    interned[raw] = change
                changes[rule.api_field] = change
        if problems or not ("name" in changes and "type" in changes and "organization" in changes):
            blamed = list(wanted)
            self._cannot_create(changes, problems, blamed, wanted)
            raise _RejectError(problems, blamed)
        origins = (record.origin,) if record.origin else ()
        self.ops.append(_new(Operation, ("create", serial, changes, "", (record.source,), origins)))
        self.counts["create"] += 1

    def _create_merged(self, serial: str, wanted: Sequence[DeviceRecord]) -> None:
        changes: dict[str, FieldChange] = {}
        problems: list[tuple[str, str]] = []
        blamed: list[DeviceRecord] = []
        used: list[DeviceRecord] = []
        for rule, raw, record in self._sourced(self.all_fields, wanted):
            try:
                value = _canonical(rule, raw)
            except (UnmappedError, InvalidValueError) as exc:
                problems.append((rule.record_field, str(exc)))
                blamed.append(record)
                continue
            if value is not None:  # nothing to clear on a new device
                changes[rule.api_field] = FieldChange(None, value)
                used.append(record)
        if problems or not ("name" in changes and "type" in changes and "organization" in changes):
            self._cannot_create(changes, problems, blamed, wanted)
            raise _RejectError(problems, blamed)
        self._emit("create", serial, changes=changes, records=used)

    def _cannot_create(
        self,
        changes: Mapping[str, FieldChange],
        problems: list[tuple[str, str]],
        blamed: list[DeviceRecord],
        wanted: Sequence[DeviceRecord],
    ) -> None:
        """Add why each required field is missing (unless its mapping already said)."""
        failed = {name for name, _ in problems}
        for name in _REQUIRED_ON_CREATE:
            if API_FIELD[name] in changes or name in failed:
                continue
            if name in self.ignored_required:
                why = f"cannot create: the policy ignores {name}, which the inventory requires"
            else:
                why = f"cannot create: no source gives a value for {name}"
            problems.append((name, why))
            blamed.extend(r for r in wanted if not any(r is b for b in blamed))

    def _compare(
        self,
        serial: str,
        wanted: Sequence[DeviceRecord],
        mirror: MirrorEntry,
        *,
        adopting: bool,
    ) -> None:
        values = mirror.values
        written = mirror.written
        changes: dict[str, FieldChange] = {}
        conflicts: dict[str, FieldChange] = {}
        used: list[DeviceRecord] = []
        conflicting: list[DeviceRecord] = []
        notes: list[str] = []
        problems: list[tuple[str, str]] = []
        blamed: list[DeviceRecord] = []
        for rule, raw, record in self._sourced(
            self.all_fields if adopting else self.managed, wanted
        ):
            if raw is None or (rule.empty_is_nothing and raw == ""):
                continue
            api = rule.api_field
            current = values.get(api, _MISSING)
            if current is _MISSING and rule.detail_only:
                current = written.get(api, _MISSING)
            if raw == current:
                # the common case, settled before any mapping or parsing (and the
                # inventory holds the value, so it is a valid one)
                continue
            try:
                verdict = _judge(rule, _canonical(rule, raw), current, written)
            except (UnmappedError, InvalidValueError) as exc:
                problems.append((rule.record_field, str(exc)))
                blamed.append(record)
                continue
            if verdict is None or (mirror.kept and _kept(mirror.kept, api, verdict[0])):
                continue
            change, base = verdict
            if base is _MISSING:
                changes[api] = change
                used.append(record)
            else:
                conflicts[api] = change
                conflicting.append(record)
                notes.append(
                    f"{api}: inventory has {change.before!r}, syncd last wrote {base!r}, "
                    f"source {record.source!r} wants {change.after!r}"
                )
        if problems:
            raise _RejectError(problems, blamed)
        if changes or adopting:  # an adopt is emitted even with nothing to change
            kind: OperationKind = "adopt" if adopting else "update"
            reason = "exists, not managed: adopted" if adopting else ""
            self._emit(kind, serial, changes=changes, reason=reason, records=used or wanted)
        elif not conflicts:
            self.counts["unchanged"] += 1
        if conflicts:
            reason = "changed by hand in the inventory, kept: " + "; ".join(notes)
            self._emit("conflict", serial, changes=conflicts, reason=reason, records=conflicting)

    # -- output ----------------------------------------------------------------------------

    def _emit(
        self,
        kind: OperationKind,
        serial: str,
        *,
        changes: Mapping[str, FieldChange] | None = None,
        reason: str = "",
        records: Sequence[DeviceRecord] = (),
    ) -> None:
        if len(records) == 1:
            first = records[0]
            sources: tuple[str, ...] = (first.source,)
            origins: tuple[str, ...] = (first.origin,) if first.origin else ()
        else:
            sources = tuple(sorted({r.source for r in records}))
            origins = tuple(sorted({r.origin for r in records if r.origin}))
        body = _NO_CHANGES if changes is None else changes
        self.ops.append(_new(Operation, (kind, serial, body, reason, sources, origins)))
        self.counts[kind] += 1

    def flush(self, sink: Sink) -> None:
        """Hand the operations planned so far to ``sink``, sorted by serial, and forget them."""
        if self.ops:
            self.ops.sort(key=_by_serial)
            sink(self.ops)
            self.ops = []

    def finish(self, candidates: int) -> Plan:
        self.ops.sort(key=_by_serial)  # stable: each serial's ops are already in kind order
        counts = {"candidates": candidates, **self.counts}
        reasons = check_gates(self.policy, self.context, counts["delete"])
        return Plan(
            operations=self.ops,
            held=bool(reasons),
            hold_reasons=reasons,
            tombstones=self.tombstones,
            counts=counts,
        )


def _canonical(rule: FieldRule, raw: object) -> object:
    """A source value in write form: mapped to an id, parsed, ``""`` -> ``None``."""
    if rule.convert is not None:
        return rule.convert(raw)
    return None if rule.optional_text and raw == "" else raw


def _judge(
    rule: FieldRule, want: object, current: object, written: Mapping[str, object]
) -> tuple[FieldChange, object] | None:
    """The three-way compare of one field: desired ``want`` against the raw inventory
    value ``current`` and the last written: ``None`` (leave it), ``(change, _MISSING)``
    (write it) or ``(change, base)`` (a hand edit away from ``base``: a conflict)."""
    api = rule.api_field
    if current is _MISSING:
        # never seen: write a wanted value; an empty one would be a blind clear
        if want is None or rule.mode == "create_only":
            return None
        return FieldChange(None, want, before_known=False), _MISSING
    have = current if current == want else current_value(api, current)
    if have == want:
        return None
    if rule.mode == "create_only":  # adopting: fill in only what the inventory lacks
        return (FieldChange(current, want), _MISSING) if have is None else None
    base = written.get(api, _MISSING)
    if base is _MISSING or rule.overwrite or current_value(api, base) == have:
        return FieldChange(current, want), _MISSING
    return FieldChange(current, want), base


def _kept(kept: Mapping[str, tuple[object, object]], api: str, change: FieldChange) -> bool:
    """Whether a person chose to keep the inventory's value over exactly this change."""
    return kept.get(api) == (change.before, change.after)


def _last_values(mirror: MirrorEntry) -> dict[str, FieldChange]:
    """What a delete removes, field by field (``after`` ``None``): the values as last read,
    and for a detail-only field the list does not show, the value syncd last wrote. The
    audit keeps them, and ``syncd revert`` re-creates the device from them."""
    values = dict(mirror.values)
    for name in DETAIL_ONLY:
        if name not in values and name in mirror.written:
            values[name] = mirror.written[name]
    return {name: FieldChange(value, None) for name, value in values.items()}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
