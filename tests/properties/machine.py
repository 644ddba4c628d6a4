"""The state machine of issue 7: sources, people, faults, deaths and runs, in any order.

The machine keeps its own model of what syncd should do and checks, after every step:

- no delete (and no write at all) of a device syncd does not own: one a person
  created, unless adoption is on and a source listed it since;
- no delete of a serial the current snapshot lists, even as a rejected row; none
  caused by a refused file (the snapshot stays the previous one) or by a shrunken
  snapshot (below ``min_source_ratio`` of the baseline) unless a person approved it;
- no hand edit of a device syncd owns is reverted (``on_manual_edit = "report"``);
- a held plan applies nothing, and a dry run writes nothing;
- no serial is created twice: one create per serial per step reaches the API, and
  none for a device syncd already created;
- after a SIGTERM or SIGINT, no change is left claimed and the run is closed;

and at teardown, with every fault off: one run (plus an approval if a gate holds
it) makes the inventory equal to the desired state, the run after it writes
nothing, and every change row is final.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import currently_in_test_context
from hypothesis import event as _event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)

from syncd.errors import SyncdError
from syncd.sandbox.testing import RequestRecord, SandboxProcess
from tests.properties.world import (
    BAD_IP,
    HAND_FIELDS,
    SERIALS,
    SOURCE_SERIALS,
    UNKNOWN_TYPE,
    Death,
    Launcher,
    Row,
    StoreView,
    World,
    csv_text,
    device_values,
)
from tests.runsupport import ORG_MAP, TYPE_MAP, WRITES

#: Script entries of the API faults a run may meet (all transient: retried, or failed
#: and re-planned by the next run).
FAULTS = ("ok", "503", "429", "500", "502", "drop", "drop_after_apply")

#: Exit code of ``syncd run`` for a held plan.
EXIT_HELD = 5
#: How a ``syncd run`` may end: done, failed, temporary failure, held, or by a signal
#: (130 and 143 are what a handler that exits "killed by SIGINT/SIGTERM" returns).
EXPECTED_EXITS = frozenset(
    {0, 1, 4, EXIT_HELD, 130, 143, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT}
)


#: What the machines did, by kind of step outcome (also reported to hypothesis).
STATS: Counter[str] = Counter()


def event(what: str) -> None:
    """Count ``what``, and tell hypothesis (its statistics) when inside a test."""
    STATS[what] += 1
    if currently_in_test_context():
        _event(what)


class InvariantError(AssertionError):
    """A data-safety invariant of issue 7 does not hold."""


@dataclass(frozen=True, slots=True)
class Families:
    """Which step families the machine generates (see ``tests/properties/known.py``)."""

    bad_cells: bool = True
    hidden_listing: bool = True
    deaths_during_writes: bool = True
    deaths_with_adopt_off: bool = True
    graceful_signals: bool = True
    recreate_by_hand: bool = True

    @classmethod
    def without(cls, open_defects: Iterable[int]) -> Families:
        """Every family except those whose known defect is still open."""
        defects = set(open_defects)
        return cls(
            bad_cells=1 not in defects,
            hidden_listing=2 not in defects,
            deaths_during_writes=3 not in defects,
            deaths_with_adopt_off=3 not in defects and 4 not in defects,
            graceful_signals=5 not in defects,
            recreate_by_hand=6 not in defects,
        )


@dataclass
class Model:
    """What the machine knows the world should be."""

    adopt: bool
    min_source_ratio: float
    #: The rows of the last file syncd accepted (None: none accepted yet).
    snapshot: dict[str, Row] | None = None
    #: Files dropped and not read yet: (rows, whether the reader accepts the file).
    waiting: list[tuple[dict[str, Row] | None, bool]] = field(default_factory=list)
    #: Snapshot size at the last released plan (the volume gate's baseline).
    baseline: int | None = None
    #: Devices in the inventory by serial, as last observed.
    present: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Who made each present device: "hand" or "syncd".
    origin: dict[str, str] = field(default_factory=dict)
    #: Serials syncd ever created a device for.
    made_by_syncd: set[str] = field(default_factory=set)
    #: Hand-made devices a source listed since they were made (adoption may take them).
    adoptable: set[str] = field(default_factory=set)
    #: Hand edits syncd must never revert: (serial, API field) -> value.
    protected: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: Serials the listing leaves out.
    hidden: frozenset[str] = frozenset()
    #: The newest run is held (as far as the last syncd step said).
    held: bool = False

    def snapshot_count(self) -> int:
        """Records in the current snapshot (rows the reader accepted)."""
        return sum(1 for r in (self.snapshot or {}).values() if not r.bad_cell)

    def read_files(self) -> None:
        """A run (or dry run) reads every waiting file, oldest first."""
        for rows, accepted in self.waiting:
            if accepted:
                self.snapshot = rows or {}
                for serial, row in self.snapshot.items():
                    if row.mappable and self.origin.get(serial) == "hand":
                        self.adoptable.add(serial)
        self.waiting.clear()


def _fail(message: str) -> None:
    raise InvariantError(message)


class SyncMachine(RuleBasedStateMachine):
    """Drives one ``World``; ``families`` says which steps it may take."""

    sandbox: SandboxProcess
    launcher: Launcher
    world_dirs: pytest.TempPathFactory
    families: Families = Families()

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.model: Model | None = None
        self.history: list[str] = []

    # -- setup ---------------------------------------------------------------------------------

    @initialize(
        adopt=st.booleans(),
        max_delete_share=st.sampled_from([1.0, 0.5]),
        min_source_ratio=st.sampled_from([0.6, 0.0]),
    )
    def setup(self, adopt: bool, max_delete_share: float, min_source_ratio: float) -> None:
        self.sandbox.reset()
        self.sandbox.set_faults(retry_after=0)
        policy = {
            "adopt": adopt,
            "orphan_grace_runs": 0,
            "orphan_grace_hours": 0,
            "max_delete_share": max_delete_share,
            "min_source_ratio": min_source_ratio,
        }
        self.world = World(
            sandbox=self.sandbox, root=self.world_dirs.mktemp("world"), policy=policy
        )
        self.model = Model(adopt=adopt, min_source_ratio=min_source_ratio)

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    @property
    def m(self) -> Model:
        assert self.model is not None
        return self.model

    # -- sources -------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        kind=st.sampled_from(["rows"] * 4 + ["refused", "header only"]),
        then_run=st.booleans(),
    )
    def drop_file(self, data: st.DataObject, kind: str, then_run: bool) -> None:
        """A procurement file: a snapshot of some source serials (some rows perhaps with a
        bad cell), a header without rows, or a file the reader refuses whole; perhaps
        followed at once by a run."""
        self._drop_file(data, kind)
        if then_run:
            self.run()

    def _drop_file(self, data: st.DataObject, kind: str) -> None:
        if kind == "refused":
            self.w.drop("hostname,site\nsw-1,DC1\n")  # no serial column
            self.m.waiting.append((None, False))
            self.history.append("drop a refused file")
            return
        serials = (
            data.draw(st.lists(st.sampled_from(SOURCE_SERIALS), unique=True, min_size=1))
            if kind == "rows"
            else []
        )
        ips = ["10.0.0.1", "10.0.0.2"] + ([BAD_IP] if self.families.bad_cells else [])
        rows = {
            s: Row(
                serial=s,
                name=data.draw(st.sampled_from([f"{s.lower()}-a", f"{s.lower()}-b"])),
                device_type=data.draw(st.sampled_from([*TYPE_MAP, UNKNOWN_TYPE])),
                organization=data.draw(st.sampled_from(list(ORG_MAP))),
                ip=data.draw(st.sampled_from(ips)),
                location=data.draw(st.sampled_from(["DC1", "DC2"])),
            )
            for s in serials
        }
        bad = sum(1 for r in rows.values() if r.bad_cell)
        accepted = not rows or bad / len(rows) <= 0.5
        self.w.drop(csv_text(rows.values()))
        self.m.waiting.append((rows, accepted))
        self.history.append(f"drop {list(rows.values())}")

    # -- people --------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        action=st.sampled_from(["create", "create", "edit", "edit", "delete"]),
        then_run=st.booleans(),
    )
    def by_hand(self, data: st.DataObject, action: str, then_run: bool) -> None:
        """A person creates, edits or deletes a device directly in the inventory; perhaps
        a run follows at once."""
        self._by_hand(data, action)
        if then_run:
            self.run()

    def _by_hand(self, data: st.DataObject, action: str) -> None:
        present = sorted(self.m.present)
        if action == "create":
            absent = [
                s
                for s in SERIALS
                if s not in self.m.present
                and (self.families.recreate_by_hand or s not in self.m.made_by_syncd)
            ]
            if not absent:
                return
            serial = data.draw(st.sampled_from(absent))
            body = {"serial_number": serial, "name": "hand-made", "type": 1, "organization": 123}
            assert self.w.by_hand("POST", None, body) == 201
            self.m.origin[serial] = "hand"
            self.m.adoptable.discard(serial)
            listed = (self.m.snapshot or {}).get(serial)
            if listed is not None and listed.mappable:
                self.m.adoptable.add(serial)  # the current snapshot lists it already
        elif not present:
            return
        elif action == "edit":
            serial = data.draw(st.sampled_from(present))
            name = data.draw(st.sampled_from(HAND_FIELDS))
            value = data.draw(st.sampled_from(["1", "2"]))
            value = f"10.9.9.{value}" if name == "ip_address" else f"by-hand-{value}"
            assert self.w.by_hand("PATCH", serial, {name: value}) == 200
            owned = self.m.origin.get(serial) == "syncd" or self.w.read_store().ownership.get(
                serial
            ) in ("created", "adopted")
            if owned:
                self.m.protected[(serial, name)] = value
        else:
            serial = data.draw(st.sampled_from(present))
            assert self.w.by_hand("DELETE", serial) == 204
        self.history.append(f"by hand: {action} {serial}")
        self._observe(kind="hand")

    # -- faults --------------------------------------------------------------------------------

    @rule(
        script=st.lists(st.sampled_from(FAULTS), max_size=5),
        hide=st.sampled_from(["none", "none", "some", "present"]),
        data=st.data(),
        then_run=st.booleans(),
    )
    def inject_faults(
        self, script: list[str], hide: str, data: st.DataObject, then_run: bool
    ) -> None:
        """The next requests meet ``script`` (then the API is healthy again); the listing
        leaves ``hidden`` out (consistently) until the faults are changed. Perhaps a run
        follows at once."""
        self._inject_faults(script, hide, data)
        if then_run:
            self.run()

    def _inject_faults(self, script: list[str], hide: str, data: st.DataObject) -> None:
        hidden: frozenset[str] = frozenset()
        if self.families.hidden_listing and hide == "some":
            hidden = data.draw(st.frozensets(st.sampled_from(SERIALS), min_size=1))
        elif self.families.hidden_listing and hide == "present":
            hidden = frozenset(self.m.present)
        self.w.sandbox.set_faults(script=script, hide_from_list=sorted(hidden))
        self.m.hidden = hidden
        self.history.append(f"faults {script}, hidden {sorted(hidden)}")

    # -- syncd ---------------------------------------------------------------------------------

    @rule(dry=st.sampled_from([False, False, False, True]))
    def run(self, dry: bool = False) -> None:
        """``syncd run --once`` (or ``syncd plan``) in this process."""
        self.w.sandbox.clear_requests()
        self.m.read_files()
        status = "raised"
        try:
            result = self.w.run(dry_run=dry)
            status = result.status
            for kind, n in result.plan.counts.items():
                if n:
                    event(f"plan has {kind}")
        except SyncdError as exc:
            self.history.append(f"run raised {type(exc).__name__}: {exc}")
        event(f"{'dry ' if dry else ''}run {status}")
        self.m.held = status == "held"
        self._after_syncd("plan" if dry else "run", held=self.m.held)

    @precondition(lambda self: self.model is not None and self.model.held)
    @rule(approve=st.booleans())
    def settle_held(self, approve: bool) -> None:
        """A person approves the held plan (``syncd approve``) or discards it."""
        newest = self.w.read_store().newest
        assert newest is not None
        self.m.held = False
        if newest.status != "held":
            return
        self.w.sandbox.clear_requests()
        if not approve:
            self.w.store.discard_run(newest.id, "machine", "the machine says no")
            self._observe(kind="hand")
            return
        try:
            with self.w.runner() as runner:
                runner.approve(newest.id, "machine")
        except SyncdError as exc:
            self.history.append(f"approve raised {type(exc).__name__}: {exc}")
        after = self.w.read_store().newest
        if after is not None and after.status != "held":
            self.m.baseline = self.m.snapshot_count()
        else:
            self.m.held = True
        event(f"approve: {after and after.status}")
        self._after_syncd("approve", held=False)

    @rule(
        stall_at=st.integers(min_value=1, max_value=4),
        after_apply=st.booleans(),
        how=st.sampled_from([signal.SIGKILL, signal.SIGTERM, signal.SIGINT]),
    )
    def run_and_die(self, stall_at: int, after_apply: bool, how: signal.Signals) -> None:
        """``syncd run --once`` in a process of its own that gets ``how`` while its
        ``stall_at``-th request waits for an answer (that landed or not)."""
        if how != signal.SIGKILL and not self.families.graceful_signals:
            how = signal.SIGKILL
        if not self.families.deaths_during_writes or (
            not self.m.adopt and not self.families.deaths_with_adopt_off
        ):
            stall_at = 1  # the first listing page: no change is claimed yet
        self.m.read_files()
        death = self.w.run_process(
            self.launcher,
            stall_at=stall_at,
            stall="stall_after_apply" if after_apply else "stall",
            sig=how,
        )
        at = death.at and (death.at.method, death.at.serial, death.at.status)
        event(f"process: signal {death.signal} at {death.at and death.at.method}")
        self.history.append(f"process: signal {death.signal} at {at}, exit {death.exit_code}")
        if death.exit_code not in EXPECTED_EXITS:
            _fail(f"syncd exited {death.exit_code} unexpectedly:\n{death.output}")
        self.m.held = death.exit_code == EXIT_HELD
        self._after_syncd("death", held=self.m.held, death=death)

    # -- checks --------------------------------------------------------------------------------

    def _observe(self, *, kind: str) -> dict[str, dict[str, Any]]:
        """Read the inventory, learn who made new devices, forget gone ones, and check
        that no protected hand edit was reverted."""
        before = self.m.present
        now = self.w.devices()
        for serial in set(before) - set(now):
            self.m.origin.pop(serial, None)
            self.m.adoptable.discard(serial)
            for key in [k for k in self.m.protected if k[0] == serial]:
                del self.m.protected[key]
        for serial in set(now) - set(before):
            if kind != "hand":
                self.m.origin[serial] = "syncd"
                self.m.made_by_syncd.add(serial)
        for (serial, name), value in self.m.protected.items():
            if serial in now and now[serial].get(name) != value:
                if kind == "hand":
                    self.m.protected[(serial, name)] = now[serial].get(name)
                else:
                    _fail(
                        f"hand edit reverted: {serial}.{name} was set to {value!r} by hand, "
                        f"syncd made it {now[serial].get(name)!r}"
                    )
        self.m.present = now
        return before

    def _after_syncd(self, kind: str, *, held: bool, death: Death | None = None) -> None:
        log = self.w.sandbox.requests()
        origin_before = dict(self.m.origin)
        adoptable_before = set(self.m.adoptable)
        before = self._observe(kind=kind)
        writes = [r for r in log if r.method in WRITES]
        if writes and (held or kind == "plan"):
            what = "a held plan" if held else "a dry run"
            _fail(f"{what} wrote to the API: {[(r.method, r.serial) for r in writes]}")
        creates: dict[str, int] = {}
        for record in writes:
            if not _landed(record) or record.serial is None:
                continue
            serial = record.serial
            if record.method == "POST":
                creates[serial] = creates.get(serial, 0) + 1
                if origin_before.get(serial) == "syncd" and serial not in self.m.hidden:
                    _fail(f"create re-sent for {serial}, a device syncd created already")
                continue
            self._check_write(record, kind, origin_before, adoptable_before, serial in before)
        twice = sorted(s for s, n in creates.items() if n > 1)
        if twice:
            _fail(f"serials created twice in one step: {twice}")
        view = self.w.read_store()
        if death is not None and death.signal in (signal.SIGTERM, signal.SIGINT):
            self._check_graceful(view, death)
        newest = view.newest
        if kind in ("run", "death") and newest is not None and newest.summary.get("held") is False:
            self.m.baseline = self.m.snapshot_count()

    def _check_write(
        self,
        record: RequestRecord,
        kind: str,
        origin: dict[str, str],
        adoptable: set[str],
        existed: bool,
    ) -> None:
        serial = record.serial
        assert serial is not None
        if not existed:
            return  # a 2xx on a device that was not there cannot happen; nothing to protect
        mine = origin.get(serial) == "syncd" or (self.m.adopt and serial in adoptable)
        if not mine:
            _fail(
                f"{record.method} of {serial}, a device syncd does not own "
                f"(made by {origin.get(serial, '?')}, adopt={self.m.adopt})"
            )
        if record.method != "DELETE":
            return
        listed = (self.m.snapshot or {}).get(serial)
        if listed is not None:
            why = "as a rejected row" if listed.bad_cell else "as a record"
            _fail(f"DELETE of {serial}, which the current snapshot lists {why}: {listed}")
        baseline, count = self.m.baseline, self.m.snapshot_count()
        if kind != "approve" and baseline and count < baseline * self.m.min_source_ratio:
            _fail(
                f"DELETE of {serial} from a shrunken snapshot ({count} records, baseline "
                f"{baseline}) without an approval"
            )

    def _check_graceful(self, view: StoreView, death: Death) -> None:
        claimed = [c for c in view.unfinished if c.status == "applying"]
        if claimed:
            _fail(
                f"signal {death.signal} left change(s) claimed: "
                f"{[(c.id, c.serial_number, c.operation) for c in claimed]}"
            )
        newest = view.newest
        if newest is not None and newest.status in ("planning", "applying"):
            _fail(f"signal {death.signal} left run {newest.id} {newest.status}")

    # -- teardown: convergence -----------------------------------------------------------------

    def teardown(self) -> None:
        if self.world is None:
            return
        try:
            self._converge()
        finally:
            self.w.sandbox.set_faults(script=[], hide_from_list=[])
            self.w.close()

    def _converge(self) -> None:
        self.w.sandbox.set_faults(script=[], hide_from_list=[])
        self.m.hidden = frozenset()
        before = dict(self.m.present)
        origin = dict(self.m.origin)
        ownership = self.w.read_store().ownership
        self.run()
        if self.m.held:
            self.settle_held(approve=True)
        self._check_desired(before, origin, ownership)
        self.w.sandbox.clear_requests()
        self.m.read_files()
        result = self.w.run()
        writes = self.w.writes()
        if writes or result.status != "done":
            _fail(
                f"the run after convergence is {result.status} and wrote "
                f"{[(r.method, r.serial, r.status) for r in writes]}"
            )
        self._observe(kind="run")
        unfinished = self.w.read_store().unfinished
        if unfinished:
            _fail(
                "change rows not final: "
                f"{[(c.id, c.serial_number, c.operation, c.status) for c in unfinished]}"
            )

    def _check_desired(
        self,
        before: dict[str, dict[str, Any]],
        origin: dict[str, str],
        ownership: dict[str, str],
    ) -> None:
        """The inventory after the convergence run, against the state before it."""
        now = self.m.present
        for serial in SERIALS:
            row = (self.m.snapshot or {}).get(serial)
            owned = origin.get(serial) == "syncd" or ownership.get(serial) in (
                "created",
                "adopted",
            )
            if row is not None and row.mappable:
                if origin.get(serial) == "hand" and not self.m.adopt:
                    continue  # someone else's device: never touched (checked per write)
                if serial not in now:
                    _fail(f"{serial} is listed by the source but not in the inventory")
                want = row.api_values()
                for (s, name), value in self.m.protected.items():
                    if s == serial:
                        want[name] = value
                have = device_values(now[serial])
                if have != want:
                    _fail(f"{serial}: the inventory holds {have}, the desired state is {want}")
            elif row is not None:
                if serial in before and serial not in now:
                    _fail(f"{serial} (a rejected row) was deleted")
            elif serial in now and owned and serial in before:
                _fail(f"{serial}: owned, listed by no source, still in the inventory")
            elif serial in before and serial not in now and not owned:
                _fail(f"{serial}: not syncd's, yet it was deleted")


def _landed(record: RequestRecord) -> bool:
    """The write reached the inventory (whatever its client heard)."""
    if record.fault in ("drop", "stall") or (record.fault and record.fault.isdigit()):
        return False
    return 200 <= record.status < 300 or (record.method == "POST" and record.status == 409)
