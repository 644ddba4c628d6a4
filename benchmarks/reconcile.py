"""Reconciliation benchmark (issue 3): CSV ingest rate, planning time, peak memory, diffsync.

Run: ``.venv/bin/python -m benchmarks [--million] [--diffsync always] [--one-process]``
(``--help`` lists the rest). It prints figures; nothing fails on timing. Method and
measured figures: ``docs/benchmarks.md``.

For each size N, every phase runs in a fresh subprocess, so each phase's peak RSS
(``ru_maxrss``) is its own:

1. ``gen``: write the baseline CSV (N devices) and the next CSV (1 % changed in one
   or two fields, 0.5 % removed, 0.5 % new), seeded (``benchmarks.datagen``).
2. ``setup``: the state after a successful previous sync, built through the store's
   public API: the baseline CSV ingested through the CSV connector and
   ``syncd.service.ingest`` (timed: the baseline ingest rate); the mirror fed with
   listed rows (``ListedDevice``) equal to the baseline through ``refresh_mirror`` (built in
   memory, no HTTP); one full plan (every serial is adopted) recorded with
   ``record_plan``; then every change marked applied and every device owned
   (``created``), see ``--mark-synced``.
3. ``ingest``: the next CSV through the same path (timed: the ingest rate).
4. ``refresh``: the unchanged inventory listed into the mirror again (what a run
   does before planning; a no-op for the store). Not part of the planning figure.
5. ``plan`` (the measured step, ``--repeat`` times, each on a fresh copy of the
   database as it was after ``ingest``): ``begin_run`` + ``candidate_serials`` +
   ``owned_total``/``source_counts``/``load_catalogue`` + ``load_candidates`` streamed
   through ``engine.plan`` + ``record_plan``, wall clock, as ``Runner`` does it.
   The plan's counts are checked against the generated changes.
   With ``--one-process``, ``whole`` also runs steps 3 to 5 in one process, on a
   copy of the state after ``setup``: the peak RSS of a whole run in one process.
6. ``diffsync``: the same diff by diffsync 2.x: two adapters loaded from the two
   CSVs (read into memory first, not timed), ``inventory.diff_from(desired)``;
   load and diff timed apart. At 1M only with ``--diffsync always``, bounded by
   ``--diffsync-timeout`` and ``--diffsync-memory-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.datagen import (
    FIELDS,
    ORGANIZATIONS,
    TYPES,
    Scenario,
    device_row,
    read_csv,
    write_csv,
)

# syncd is imported inside the functions that use it, not here: the diffsync process
# then loads only diffsync, and its peak RSS is diffsync's own.
if TYPE_CHECKING:
    from connectors.csv_drop import CsvDropConnector
    from syncd.engine import Policy
    from syncd.listed import ListedDevice
    from syncd.store import Store

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR = "procurement"
CSV_NAME = "devices.csv"
PHASES = (
    "gen",
    "setup",
    "ingest",
    "refresh",
    "plan",
    "whole",
    "e2e",
    "cold",
    "diffsync",
    "diffsync_cold",
)

T = TypeVar("T")
Result = dict[str, Any]


# -- measuring -------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident set size now, MiB."""
    with Path("/proc/self/statm").open() as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class Timed(Iterator[T]):
    """Wraps an iterator and adds up the time spent producing its items, so a lazily
    consumed stage (candidates loaded while the engine plans) can be timed apart."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)
        self.seconds = 0.0
        self.count = 0

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        start = time.perf_counter()
        try:
            item = next(self._items)
        finally:
            self.seconds += time.perf_counter() - start
        self.count += 1
        return item


def _quiet_logs() -> None:
    """The same log set-up for syncd and diffsync: warnings only, to stderr."""
    from syncd.log import configure

    configure(level="WARNING")


# -- the syncd side --------------------------------------------------------------------------


def bench_policy() -> Policy:
    """Default field policy; every model and tenant mapped; orphans deleted at once and
    no delete gate, so the removed devices are planned as deletes."""
    from syncd.engine import Policy

    return Policy.default(
        orphan_grace_runs=0,
        orphan_grace_seconds=0,
        max_delete_share=1.0,
        type_map={model: i + 1 for i, model in enumerate(TYPES)},
        organization_map={name: i + 1 for i, name in enumerate(ORGANIZATIONS)},
    )


def replan_policy() -> Policy:
    """``bench_policy`` with another fingerprint and the same meaning for one source (a
    source priority naming it): every serial is planned again, as after a policy edit."""
    from dataclasses import replace

    return replace(bench_policy(), source_priority=(CONNECTOR,))


#: ``--store``: a PostgreSQL server URL (no database) to run on instead of SQLite files;
#: each database "file" of the benchmark is then a database of that name.
STORE_SERVER = os.environ.get("SYNCD_BENCH_STORE", "")


def _store_url(path: Path) -> str:
    if STORE_SERVER:
        return f"{STORE_SERVER.rstrip('/')}/{_pg_name(path)}"
    return f"sqlite:///{path}"


def _pg_name(path: Path) -> str:
    return "bench_" + path.parent.name + "_" + path.stem.replace("-", "_")


def _connector(workdir: Path) -> CsvDropConnector:
    from connectors.csv_drop import CsvDropConfig, CsvDropConnector

    config = CsvDropConfig(inbox=workdir / "inbox", stable_seconds=0)
    return CsvDropConnector(CONNECTOR, config)


def _ingest_file(store: Store, workdir: Path, csv_file: Path, rows: int) -> Result:
    """Drop ``csv_file`` into the inbox and ingest it as a run does; the rate counts the
    connector's read (checksum, decoding, parsing), staging and the merge."""
    from syncd.service import ingest

    inbox = workdir / "inbox"
    inbox.mkdir(exist_ok=True)
    shutil.copyfile(csv_file, inbox / CSV_NAME)
    policy = bench_policy()
    connector = _connector(workdir)
    start = time.perf_counter()
    report = ingest(
        store, [connector], serial_rules=policy.serial, run_id=None, now=datetime.now(UTC)
    )
    seconds = time.perf_counter() - start
    (batch,) = report.batches
    if not batch.accepted or batch.records != rows:
        raise SystemExit(f"ingest of {csv_file.name} went wrong: {batch}")
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def inventory_devices(
    scenario: Scenario, *, detail: bool = True, edited: int = 0
) -> Iterator[ListedDevice]:
    """The baseline as the inventory holds it (no HTTP), as the plain rows the listing
    hands a refresh (``Listing.rows()``): in detail shape (what set-up writes, as
    syncd's own writes would leave the mirror), or as list pages give it
    (``detail=False``: no description, MAC or firmware). Every ``edited``-th device's
    location was changed by hand in the inventory (``0``: none)."""
    from syncd.listed import ListedDevice, OrgRef, TypeRef

    types = {model: TypeRef(i + 1, model, model) for i, model in enumerate(TYPES)}
    orgs = {name: OrgRef(i + 1, name) for i, name in enumerate(ORGANIZATIONS)}
    for index, row in enumerate(scenario.baseline_rows()):
        if edited and index % edited == 0:
            row["location"] = f"{row['location']}-moved-by-hand"
        kind, org = types[row["device_type"]], orgs[row["organization"]]
        values: dict[str, Any] = {
            "name": row["name"],
            "type": kind.id,
            "organization": org.id,
            "ip_address": row["ip_address"],
        }
        if detail:
            values["mac_address"] = row["mac_address"]
        values["location"] = row["location"]
        if detail:
            if row["description"]:
                values["description"] = row["description"]
            values["firmware_version"] = row["firmware_version"]
        yield ListedDevice(
            row["serial_number"], values, type=kind, organization=org, created_at=None
        )


def _refresh(store: Store, scenario: Scenario, *, detail: bool = False, edited: int = 0) -> Result:
    devices = Timed(inventory_devices(scenario, detail=detail, edited=edited))
    start = time.perf_counter()
    stats = store.refresh_mirror(devices, complete=True, now=datetime.now(UTC))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "building_devices_s": devices.seconds,
        "store_s": seconds - devices.seconds,
        "stats": {k: getattr(stats, k) for k in ("listed", "new", "changed", "unchanged", "gone")},
    }


def run_plan(store: Store, policy: Policy, trigger: str) -> Result:
    """One planning run, timed step by step: what ``Runner.run`` does between the mirror
    refresh and applying (``begin_run``, ``make_plan``, ``record_plan``), as bulk work
    as a run is (``process.bulk_work``)."""
    from syncd.process import bulk_work

    with bulk_work():
        return _run_plan(store, policy, trigger)


def _run_plan(store: Store, policy: Policy, trigger: str) -> Result:
    from syncd import engine
    from syncd.engine import PlanContext

    laps: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of this process per step (a loaded machine)
    mark = start = time.perf_counter()
    cpu_mark = cpu_start = time.process_time()

    def lap(name: str) -> None:
        nonlocal mark, cpu_mark
        now, cpu_now = time.perf_counter(), time.process_time()
        laps[name], cpu[name] = now - mark, cpu_now - cpu_mark
        mark, cpu_mark = now, cpu_now

    run_id = store.begin_run(trigger, policy.fingerprint())
    lap("begin_run")
    catalogue = store.load_catalogue()
    serials, settled = store.settled_candidates(run_id, engine.settle_fields(policy, catalogue))
    lap("candidate_serials")
    context = PlanContext(
        now=datetime.now(UTC),
        owned_total=store.owned_total(),
        source_counts=store.source_counts(),
        run_id=str(run_id),
    )
    lap("context_and_catalogue")
    candidates = Timed(store.load_candidates(serials))
    # As ``Runner.run`` records a plan: the operations stream into the store as planned.
    with store.plan_writer(run_id) as writer:
        staging = Timed(iter(()))
        sink = _timed_sink(writer.add, staging)
        plan = engine.plan(
            candidates, policy, catalogue, context, sink=sink, settled=settled, ordered=True
        )
        lap("load_and_plan")
        laps["load_candidates"] = candidates.seconds
        laps["engine_plan"] = laps.pop("load_and_plan") - candidates.seconds - staging.seconds
        summary = writer.record(plan)
    lap("record_plan")
    laps["record_plan"] += staging.seconds  # staging the operations is part of recording
    total = time.perf_counter() - start
    counts = {k: v for k, v in plan.counts.items() if v}
    return {
        "run_id": run_id,
        "seconds": total,
        "steps": laps,
        "cpu_s": time.process_time() - cpu_start,
        "cpu_steps": cpu,
        "candidates": len(serials) + settled,
        "settled_in_store": settled,
        "operations": sum(plan.counts.get(k, 0) for k in ("create", "adopt", "update", "delete")),
        "counts": counts,
        "held": plan.held,
        "hold_reasons": list(plan.hold_reasons),
        "superseded": summary.get("superseded", 0),
    }


def _timed_sink(sink: Callable[[Any], None], clock: Timed[Any]) -> Callable[[Any], None]:
    """``sink``, its time added to ``clock.seconds``."""

    def timed(ops: Any) -> None:
        start = time.perf_counter()
        sink(ops)
        clock.seconds += time.perf_counter() - start

    return timed


def expected_counts(scenario: Scenario) -> dict[str, int]:
    """The operations the measured plan must hold: one per generated change."""
    return {
        "update": len(scenario.changed),
        "create": scenario.new_count,
        "delete": len(scenario.removed),
    }


def counts_match(result: Result, scenario: Scenario) -> bool:
    """Whether a ``run_plan`` result holds exactly the generated changes, unheld."""
    counts, expected = result["counts"], expected_counts(scenario)
    found = {kind: counts.get(kind, 0) for kind in expected}
    others = {k: v for k, v in counts.items() if k not in (*expected, "candidates")}
    return found == expected and not others and not result["held"]


def _write_body(row: dict[str, str]) -> dict[str, Any]:
    """The body syncd would have sent to create the device (write form)."""
    body: dict[str, Any] = {
        "name": row["name"],
        "type": TYPES.index(row["device_type"]) + 1,
        "organization": ORGANIZATIONS.index(row["organization"]) + 1,
        "ip_address": row["ip_address"],
        "mac_address": row["mac_address"],
        "location": row["location"],
        "firmware_version": row["firmware_version"],
    }
    if row["description"]:
        body["description"] = row["description"]
    return body


def _mark_synced_record_write(store: Store, scenario: Scenario, run_id: int) -> int:
    """The public path: one ``record_write`` per device, as the apply step does after
    each successful write (the change marked applied, the device owned)."""
    bodies = {row["serial_number"]: i for i, row in enumerate(scenario.baseline_rows())}
    done = 0
    while batch := store.pending_changes(run_id=run_id, limit=5000):
        for change in batch:
            body = _write_body(device_row(scenario.seed, bodies[change.serial_number]))
            store.record_write(
                change.serial_number,
                "adopt",
                body,
                None,
                ownership="created",
                change_id=change.id,
                response={"status_code": 200},
            )
            done += 1
    return done


# WORKAROUND (benchmark only): the store has no bulk form of ``record_write``, and one
# call per device costs about 1.2 ms (118 s of set-up at 100k, some 20 minutes at 1M).
# These two statements leave the state that ``record_write(serial, "adopt", <every
# field>, None, ownership="created", change_id=...)`` leaves for every device of the
# run: owned, "last written" equal to the values read, hashes unchanged (the values
# are), change applied. ``--mark-synced record-write`` takes the public path.
def _mark_synced_sql(store: Store, run_id: int) -> int:
    from syncd.store.tables import CHANGE, MIRROR

    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(
            MIRROR.update()
            .where(MIRROR.c.present.is_(True))
            .values(ownership="created", written=MIRROR.c["values"], updated_at=now)
        )
        done = conn.execute(
            CHANGE.update()
            .where(CHANGE.c.run_id == run_id, CHANGE.c.status == "pending")
            .values(
                status="applied",
                applied_at=now,
                updated_at=now,
                response={"status_code": 200},
            )
        ).rowcount
    return int(done)


def _checkpoint(store: Store) -> None:
    """Fold the WAL into the database file, so the file alone can be copied (SQLite);
    refresh the planner's statistics, as autovacuum would (PostgreSQL)."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            conn.exec_driver_sql("COMMIT")
            conn.exec_driver_sql("ANALYZE")


# -- phases (each runs in its own process) ----------------------------------------------------


def phase_gen(workdir: Path, scenario: Scenario) -> Result:
    """Write both CSV files and what the plan should find."""
    start = time.perf_counter()
    baseline = write_csv(workdir / "baseline.csv", scenario.baseline_rows())
    following = write_csv(workdir / "next.csv", scenario.next_rows())
    return {
        "seconds": time.perf_counter() - start,
        "baseline_rows": baseline,
        "next_rows": following,
        "baseline_mb": (workdir / "baseline.csv").stat().st_size / (1 << 20),
        "expected": expected_counts(scenario),
    }


def phase_setup(workdir: Path, scenario: Scenario, mark: str) -> Result:
    """The state after a successful previous sync (see the module docstring)."""
    from syncd.store import Store

    policy = bench_policy()
    _create_database(workdir / "state.db")
    store = Store.open(_store_url(workdir / "state.db"))
    try:
        ingested = _ingest_file(store, workdir, workdir / "baseline.csv", scenario.n)
        refreshed = _refresh(store, scenario, detail=True)
        first = run_plan(store, policy, "benchmark-setup")
        if first["counts"].get("adopt") != scenario.n:
            raise SystemExit(f"setup plan should adopt all {scenario.n}: {first['counts']}")
        start = time.perf_counter()
        if mark == "sql":
            marked = _mark_synced_sql(store, first["run_id"])
        else:
            marked = _mark_synced_record_write(store, scenario, first["run_id"])
        store.finish_run(first["run_id"], "done")
        marked_s = time.perf_counter() - start
        if marked != scenario.n or store.owned_total() != scenario.n:
            raise SystemExit(f"marking synced went wrong: {marked} marked")
        _checkpoint(store)
    finally:
        store.close()
    return {
        "ingest": ingested,
        "refresh": refreshed,
        "full_plan": first,
        "mark_synced": {"method": mark, "seconds": marked_s, "devices": marked},
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_ingest(workdir: Path, scenario: Scenario) -> Result:
    """The next CSV into the store (timed)."""
    from syncd.store import Store

    store = Store.open(_store_url(workdir / "state.db"))
    try:
        rss_before = current_rss_mb()
        result = _ingest_file(store, workdir, workdir / "next.csv", scenario.next_count)
        _checkpoint(store)
    finally:
        store.close()
    return {**result, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb()}


def phase_refresh(workdir: Path, scenario: Scenario) -> Result:
    """The unchanged inventory listed into the mirror again (no-op for the store)."""
    from syncd.store import Store

    store = Store.open(_store_url(workdir / "state.db"))
    try:
        rss_before = current_rss_mb()
        result = _refresh(store, scenario)
        _checkpoint(store)
    finally:
        store.close()
    return {**result, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb()}


def phase_whole(workdir: Path, database: Path, scenario: Scenario) -> Result:
    """Ingest, refresh and plan in ONE process, on ``database`` (a copy of the state
    after ``setup``): the peak RSS of a whole run as ``syncd run`` would see it."""
    from syncd.store import Store

    inbox_root = workdir / "whole"  # its own inbox and ledger: next.csv is not a duplicate
    inbox_root.mkdir(exist_ok=True)
    store = Store.open(_store_url(database))
    try:
        start = time.perf_counter()
        ingested = _ingest_file(store, inbox_root, workdir / "next.csv", scenario.next_count)
        refreshed = _refresh(store, scenario)
        planned = run_plan(store, bench_policy(), "benchmark-whole")
        seconds = time.perf_counter() - start
    finally:
        store.close()
    return {
        "seconds": seconds,
        "ingest_s": ingested["seconds"],
        "refresh_s": refreshed["seconds"],
        "plan_s": planned["seconds"],
        "counts": planned["counts"],
        "counts_match": counts_match(planned, scenario),
        "peak_rss_mb": peak_rss_mb(),
    }


#: Every how many devices one was edited by hand in the inventory, for end to end (b).
HAND_EDITED_EVERY = 100


def phase_e2e(workdir: Path, database: Path, scenario: Scenario, case: str) -> Result:
    """One end-to-end path, in one process, to a committed plan (issue 9's (a), (b), (c)).

    (a) ``drop``: the next CSV ingested, the unchanged inventory listed into the mirror,
    the plan recorded, on the state after set-up (``syncd run``'s default, which lists
    the inventory first); ``drop-daemon``: the same drop as the daemon runs it, on the
    mirror as it stands (the daemon lists the inventory on its own schedule,
    ``daemon.mirror_refresh``, not for each drop). (b) ``refresh``: no new source data,
    the inventory listed with 1 % of the devices' locations edited by hand, the plan
    recorded. (c) ``replan``: on the state after the next CSV was ingested, a policy with
    a new fingerprint, so every serial is planned and recorded. The time spent building
    the listed rows in memory (the API client's side) is reported
    apart and left out of ``store_s``.
    """
    from syncd.store import Store

    store = Store.open(_store_url(database))
    result: Result = {"case": case}
    try:
        start = time.perf_counter()
        if case in ("drop", "drop-daemon"):
            inbox_root = workdir / f"e2e-{case}"  # its own inbox and ledger
            inbox_root.mkdir(exist_ok=True)
            result["ingest"] = _ingest_file(
                store, inbox_root, workdir / "next.csv", scenario.next_count
            )
            if case == "drop":
                result["refresh"] = _refresh(store, scenario)
            planned = run_plan(store, bench_policy(), "benchmark-e2e")
        elif case == "refresh":
            result["refresh"] = _refresh(store, scenario, edited=HAND_EDITED_EVERY)
            planned = run_plan(store, bench_policy(), "benchmark-e2e")
        else:
            planned = run_plan(store, replan_policy(), "benchmark-e2e")
        seconds = time.perf_counter() - start
        change_rows = sum(store.change_counts(planned["run_id"]).values())
    finally:
        store.close()
    building = result.get("refresh", {}).get("building_devices_s", 0.0)
    return {
        **result,
        "seconds": seconds,
        "store_s": seconds - building,
        "plan": planned,
        "change_rows": change_rows,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_cold(workdir: Path, scenario: Scenario, as_json: bool) -> Result:
    """A cold drop as a new user meets it: the baseline CSV in an inbox, an empty
    inventory (the sandbox, on loopback), an empty store, and ``syncd plan`` (or
    ``syncd plan --json``) as a whole process; its wall time and peak RSS."""
    from syncd.sandbox.testing import SandboxProcess

    home = workdir / ("cold-json" if as_json else "cold")
    shutil.rmtree(home, ignore_errors=True)
    (home / "inbox").mkdir(parents=True)
    shutil.copyfile(workdir / "baseline.csv", home / "inbox" / CSV_NAME)
    with SandboxProcess() as sandbox:
        config = home / "syncd.toml"
        config.write_text(_cold_config(sandbox.base_url, home), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env["SYNCD_INVENTORY__TOKEN"] = sandbox.token.get_secret_value()
        command = [str(Path(sys.executable).with_name("syncd")), "plan", "--config", str(config)]
        if as_json:
            command.append("--json")
        out, err = home / "stdout.txt", home / "stderr.txt"
        start = time.perf_counter()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
            _pid, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"syncd plan failed ({status}): {err.read_text()[-2000:]}")
    return {
        "json": as_json,
        "seconds": seconds,
        "process_peak_rss_mb": usage.ru_maxrss / 1024,
        "output_mb": out.stat().st_size / (1 << 20),
        "creates": scenario.n,
    }


def _cold_config(base_url: str, home: Path) -> str:
    types = "\n".join(f'"{model}" = {i + 1}' for i, model in enumerate(TYPES))
    orgs = "\n".join(f'"{name}" = {i + 1}' for i, name in enumerate(ORGANIZATIONS))
    return (
        f'[inventory]\nbase_url = "{base_url}"\n'
        f'[store]\nurl = "sqlite:///{home / "syncd.db"}"\n'
        '[logging]\nlevel = "WARNING"\n'
        f'[[connectors]]\nname = "{CONNECTOR}"\nplugin = "csv_drop"\n'
        f'[connectors.options]\ninbox = "{home / "inbox"}"\nstable_seconds = 0\n'
        f"[policy.type_map]\n{types}\n[policy.organization_map]\n{orgs}\n"
    )


def phase_diffsync_cold(workdir: Path) -> Result:
    """diffsync on the cold drop: the CSV read, loaded as the desired side, an empty
    inventory side, and the diff (every device a create), all timed together."""
    start = time.perf_counter()
    rows = list(read_csv(workdir / "baseline.csv"))
    inventory, desired = _diffsync_adapters()
    desired.load_rows(rows)
    diff = inventory.diff_from(desired)
    seconds = time.perf_counter() - start
    summary = {str(k): int(v) for k, v in diff.summary().items()}
    return {"seconds": seconds, "summary": summary, "peak_rss_mb": peak_rss_mb()}


def phase_plan(database: Path, scenario: Scenario) -> Result:
    """The measured step, on ``database`` (a copy of the state after ``ingest``)."""
    from syncd.store import Store

    policy = bench_policy()
    store = Store.open(_store_url(database))
    try:
        rss_before, peak_before = current_rss_mb(), peak_rss_mb()
        result = run_plan(store, policy, "benchmark")
        peak = peak_rss_mb()
        change_rows = sum(store.change_counts(result["run_id"]).values())
    finally:
        store.close()
    return {
        **result,
        "change_rows": change_rows,
        "expected": expected_counts(scenario),
        "counts_match": counts_match(result, scenario),
        "rss_before_mb": rss_before,
        "peak_rss_before_mb": peak_before,
        "peak_rss_mb": peak,
    }


def _diffsync_adapters() -> tuple[Any, Any]:
    """Two empty diffsync adapters (inventory, desired) of one model: the serial as its
    identifier, the eight other columns as attributes (text)."""
    from diffsync import Adapter, DiffSyncModel

    class Device(DiffSyncModel):
        _modelname = "device"
        _identifiers = ("serial_number",)
        _attributes = FIELDS[1:]  # every column but the identifier
        serial_number: str
        name: str
        device_type: str
        organization: str
        ip_address: str
        mac_address: str
        location: str
        description: str
        firmware_version: str

    class Devices(Adapter):
        device = Device
        top_level = ["device"]  # noqa: RUF012 - diffsync's own declaration style

        def load_rows(self, rows: list[dict[str, str]]) -> None:
            for row in rows:
                self.add(Device(**row))

    return Devices(name="inventory"), Devices(name="desired")


def phase_diffsync(workdir: Path, memory_gb: float) -> Result:
    """The same diff by diffsync: baseline (the inventory) vs next (what is wanted)."""
    if memory_gb > 0:
        limit = int(memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.perf_counter()
    baseline_rows = list(read_csv(workdir / "baseline.csv"))
    next_rows = list(read_csv(workdir / "next.csv"))
    read_s = time.perf_counter() - start
    rss_before = current_rss_mb()
    start = time.perf_counter()
    inventory, desired = _diffsync_adapters()
    inventory.load_rows(baseline_rows)
    desired.load_rows(next_rows)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    diff = inventory.diff_from(desired)
    diff_s = time.perf_counter() - start
    summary = {str(k): int(v) for k, v in diff.summary().items()}
    return {
        "csv_read_s": read_s,
        "load_s": load_s,
        "diff_s": diff_s,
        "load_and_diff_s": load_s + diff_s,
        "summary": summary,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_phase(args: argparse.Namespace) -> None:
    """Entry point of one phase's subprocess: its result goes to ``<phase>.json``."""
    _quiet_logs()
    workdir = Path(args.dir)
    scenario = Scenario.build(args.n, args.seed)
    result: Result
    if args.phase == "gen":
        result = phase_gen(workdir, scenario)
    elif args.phase == "setup":
        result = phase_setup(workdir, scenario, args.mark_synced)
    elif args.phase == "ingest":
        result = phase_ingest(workdir, scenario)
    elif args.phase == "refresh":
        result = phase_refresh(workdir, scenario)
    elif args.phase == "plan":
        result = phase_plan(Path(args.database), scenario)
    elif args.phase == "whole":
        result = phase_whole(workdir, Path(args.database), scenario)
    elif args.phase == "e2e":
        result = phase_e2e(workdir, Path(args.database), scenario, args.case)
    elif args.phase == "cold":
        result = phase_cold(workdir, scenario, args.case == "json")
    elif args.phase == "diffsync_cold":
        result = phase_diffsync_cold(workdir)
    else:
        try:
            result = phase_diffsync(workdir, args.diffsync_memory_gb)
        except MemoryError:
            cap = args.diffsync_memory_gb
            result = {
                "skipped": f"ran out of memory under the {cap:g} GB cap (--diffsync-memory-gb)"
            }
    result.setdefault("peak_rss_mb", peak_rss_mb())
    out = Path(args.out) if args.out else workdir / f"{args.phase}.json"
    out.write_text(json.dumps(result, indent=2))


# -- orchestration -----------------------------------------------------------------------------


def _spawn(
    phase: str,
    n: int,
    workdir: Path,
    args: argparse.Namespace,
    *extra: str,
    timeout: float | None = None,
) -> Result | str:
    """Run one phase in a fresh interpreter; its result, or why it gave none."""
    out = workdir / f"{phase}-{len(list(workdir.glob(f'{phase}*.json')))}.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.reconcile",
        "--phase",
        phase,
        "--n",
        str(n),
        "--seed",
        str(args.seed),
        "--dir",
        str(workdir),
        "--out",
        str(out),
        "--mark-synced",
        args.mark_synced,
        "--diffsync-memory-gb",
        str(args.diffsync_memory_gb),
        *extra,
    ]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"stopped after {timeout:g} s (--diffsync-timeout)"
    if done.returncode != 0 or not out.exists():
        return f"exit status {done.returncode}"
    result: Result = json.loads(out.read_text())
    result["process_s"] = time.perf_counter() - start
    return result


def _require(result: Result | str, phase: str) -> Result:
    if isinstance(result, str):
        raise SystemExit(f"phase {phase} failed: {result}")
    return result


def _pg_admin(*statements: str) -> None:
    import psycopg

    dsn = STORE_SERVER.replace("postgresql+psycopg://", "postgresql://").rstrip("/")
    with psycopg.connect(f"{dsn}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def _create_database(path: Path) -> None:
    """A fresh, empty database for ``path`` (PostgreSQL; a SQLite file makes itself)."""
    if STORE_SERVER:
        name = _pg_name(path)
        _pg_admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    else:
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def _copy_database(source: Path, target: Path) -> None:
    if STORE_SERVER:
        name = _pg_name(target)
        _pg_admin(
            f"DROP DATABASE IF EXISTS {name}",
            f"CREATE DATABASE {name} TEMPLATE {_pg_name(source)}",
        )
        return
    for suffix in ("", "-wal", "-shm"):
        src = source.with_name(source.name + suffix)
        dst = target.with_name(target.name + suffix)
        dst.unlink(missing_ok=True)
        if src.exists():
            shutil.copyfile(src, dst)


def bench_size(n: int, args: argparse.Namespace, root: Path) -> Result:
    """Every phase for one size; returns the collected figures."""
    workdir = root / f"n{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    say = _progress(n)
    say("generating CSV files")
    gen = _require(_spawn("gen", n, workdir, args), "gen")
    say(f"setting up the synced state ({args.mark_synced})")
    setup = _require(_spawn("setup", n, workdir, args), "setup")
    state = workdir / "state.db"
    for case in ("setup", "e2e-drop", "e2e-drop-daemon", "e2e-refresh"):
        _copy_database(state, workdir / f"{case}.db")
    say("ingesting the next CSV")
    ingested = _require(_spawn("ingest", n, workdir, args), "ingest")
    refreshed: Result | None = None
    if args.refresh:
        say("refreshing the mirror (unchanged inventory)")
        refreshed = _require(_spawn("refresh", n, workdir, args), "refresh")
    plans: list[Result] = []
    for attempt in range(args.repeat):
        say(f"planning ({attempt + 1} of {args.repeat})")
        copy = workdir / "plan.db"
        _copy_database(state, copy)
        plans.append(_require(_spawn("plan", n, workdir, args, "--database", str(copy)), "plan"))
    e2e, cold = _end_to_end(n, workdir, args, say)
    whole: Result | None = None
    if args.one_process:
        say("ingest + refresh + plan in one process")
        setup_db = str(workdir / "setup.db")  # used up: this phase plays the next run on it
        whole = _require(_spawn("whole", n, workdir, args, "--database", setup_db), "whole")
    diffsync: Result | str
    diffsync_cold: Result | str = "not run"
    if args.diffsync == "always" or (args.diffsync == "auto" and n <= args.diffsync_auto_max):
        say("diffsync")
        diffsync = _spawn("diffsync", n, workdir, args, timeout=args.diffsync_timeout)
        if isinstance(diffsync, dict) and "skipped" in diffsync:
            diffsync = str(diffsync["skipped"])
        if args.cold and n <= args.cold_max:
            say("diffsync on the cold drop")
            diffsync_cold = _spawn("diffsync_cold", n, workdir, args, timeout=args.diffsync_timeout)
    elif args.diffsync == "never":
        diffsync = "not run (--diffsync never)"
    else:
        diffsync = (
            f"not run at this size (--diffsync always runs it; "
            f"auto runs it up to {args.diffsync_auto_max:,} devices)"
        )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "n": n,
        "seed": args.seed,
        "gen": gen,
        "setup": setup,
        "ingest": ingested,
        "refresh": refreshed,
        "plans": plans,
        "whole": whole,
        "e2e": e2e,
        "cold": cold,
        "diffsync": diffsync,
        "diffsync_cold": diffsync_cold,
    }


def _end_to_end(
    n: int, workdir: Path, args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[dict[str, Result], dict[str, Result]]:
    """End to end (a), (b), (c) on copies of the state, and the cold drop."""
    e2e: dict[str, Result] = {}
    for case in ("drop", "drop-daemon", "refresh", "replan"):
        say(f"end to end: {case}")
        database = workdir / ("plan.db" if case == "replan" else f"e2e-{case}.db")
        if case == "replan":
            _copy_database(workdir / "state.db", database)
        e2e[case] = _require(
            _spawn("e2e", n, workdir, args, "--database", str(database), "--case", case), "e2e"
        )
    cold: dict[str, Result] = {}
    if args.cold and n <= args.cold_max:
        for case in ("table", "json"):
            say(f"cold drop: a whole `syncd plan{' --json' if case == 'json' else ''}` process")
            cold[case] = _require(_spawn("cold", n, workdir, args, "--case", case), "cold")
    return e2e, cold


def _progress(n: int) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"[{n:,}] {message} ...", file=sys.stderr, flush=True)

    return say


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlite3

    import diffsync

    try:
        from importlib.metadata import version

        diffsync_version = version("diffsync")
    except Exception:  # noqa: BLE001 - only for the report
        diffsync_version = getattr(diffsync, "__version__", "?")
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "diffsync": diffsync_version,
        "platform": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


#: Issue 3's targets, by size: planning seconds, peak MiB (400 MB), diffsync factor.
PLANNING_TARGET_S = {100_000: 1.0, 1_000_000: 10.0}
MEMORY_TARGET_MIB = {1_000_000: 400e6 / (1 << 20)}
DIFFSYNC_TARGET_X = {100_000: 20.0}
#: Issue 9's targets.
INGEST_TARGET_ROWS_S = {1_000_000: 300_000.0}
INGEST_FLOOR_ROWS_S = 200_000.0
REFRESH_TARGET_S_PER_100K = 0.5
E2E_DROP_TARGET_S = {100_000: 1.0, 1_000_000: 6.0}
E2E_DROP_DIFFSYNC_X = {100_000: 8.0}
REPLAN_TARGET_S = {1_000_000: 15.0}
COLD_DIFFSYNC_X = {100_000: 4.0}
JSON_OVER_TABLE_MAX = 1.5
HELP_TARGET_S = 0.3


def _verdict(value: float, target: float | None, *, more_is_better: bool = False) -> str:
    if target is None:
        return ""
    met = value >= target if more_is_better else value < target
    sign = ">=" if more_is_better else "<"
    return f"  [target {sign} {target:,.4g}: {'met' if met else 'NOT met'}]"


def report(results: list[Result]) -> str:
    """The table printed at the end (also what ``docs/benchmarks.md`` quotes)."""
    info = machine()
    started = help_seconds()
    lines = [
        f"machine: {info['cpus']} CPUs, {info['cpu']}; Python {info['python']}, "
        f"SQLite {info['sqlite']}, diffsync {info['diffsync']}; load average {info['load']}",
        f"START-UP: `syncd --help` {_fmt_s(started)} (best of 5){_verdict(started, HELP_TARGET_S)}",
    ]
    for res in results:
        lines.extend(_report_size(res))
    return "\n".join(lines)


def _report_issue9(res: Result, add: Callable[[str, str], None]) -> None:
    """Issue 9's figures: ingest at scale, refresh, end to end (a), (b), (c), cold drop."""
    n = res["n"]
    memory = MEMORY_TARGET_MIB.get(n)
    ingested = res["ingest"]
    rate = ingested["rows_per_s"]
    add(
        "INGEST rate, next file (issue 9)",
        f"{rate:,.0f} rows/s{_verdict(rate, INGEST_TARGET_ROWS_S.get(n), more_is_better=True)}"
        + (f" (floor {INGEST_FLOOR_ROWS_S:,.0f})" if n in INGEST_TARGET_ROWS_S else ""),
    )
    refreshed = res["refresh"]
    if refreshed is not None:
        target = REFRESH_TARGET_S_PER_100K * n / 100_000
        add(
            "MIRROR REFRESH, store side (unchanged listing)",
            f"{_fmt_s(refreshed['store_s'])}{_verdict(refreshed['store_s'], target)}",
        )
    ds = res["diffsync"]
    ds_load_diff = None if isinstance(ds, str) else ds["load_and_diff_s"]
    labels = {
        "drop": "(a) new CSV drop, unchanged mirror -> committed plan",
        "drop-daemon": "(a) the same drop as the daemon runs it (no listing)",
        "refresh": "(b) mirror refresh (1 % hand-edited) -> committed plan",
        "replan": "(c) full re-plan (policy changed) -> committed plan",
    }
    for case, found in res.get("e2e", {}).items():
        seconds = found["store_s"]
        target = {
            "drop": E2E_DROP_TARGET_S,
            "drop-daemon": E2E_DROP_TARGET_S,
            "replan": REPLAN_TARGET_S,
        }.get(case, {}).get(n)
        text = f"{_fmt_s(seconds)}{_verdict(seconds, target)}"
        if ds_load_diff is not None:
            factor = ds_load_diff / seconds
            wanted = E2E_DROP_DIFFSYNC_X.get(n) if case.startswith("drop") else None
            text += f"; diffsync load + diff {_fmt_s(ds_load_diff)} = {factor:,.1f}x"
            text += _verdict(factor, wanted, more_is_better=True)
        add(f"END TO END {labels[case]}", text)
        parts = [
            f"{name} {_fmt_s(seconds)}"
            for name, seconds in (
                ("ingest", found.get("ingest", {}).get("seconds")),
                ("refresh", found.get("refresh", {}).get("store_s")),
                ("plan", found["plan"]["seconds"]),
            )
            if seconds is not None
        ]
        add("  of which", ", ".join(parts))
        counts = ", ".join(f"{k} {v:,}" for k, v in found["plan"]["counts"].items())
        add("  plan counts / change rows", f"{counts} / {found['change_rows']:,}")
        peak = found["peak_rss_mb"]
        add("  peak RSS of the process", f"{peak:,.0f} MiB{_verdict(peak, memory)}")
    cold = res.get("cold", {})
    table, as_json = cold.get("table"), cold.get("json")
    if table:
        text = f"{_fmt_s(table['seconds'])}, peak {table['process_peak_rss_mb']:,.0f} MiB"
        dsc = res.get("diffsync_cold")
        if isinstance(dsc, dict):
            factor = dsc["seconds"] / table["seconds"]
            text += f"; diffsync read + load + diff {_fmt_s(dsc['seconds'])} = {factor:,.1f}x"
            text += _verdict(factor, COLD_DIFFSYNC_X.get(n), more_is_better=True)
        add(f"COLD DROP of {n:,} new rows: a whole `syncd plan`", text)
    if table and as_json:
        ratio = as_json["seconds"] / table["seconds"]
        add(
            "  the same with --json",
            f"{_fmt_s(as_json['seconds'])} = {ratio:.2f}x the table"
            f"{_verdict(ratio, JSON_OVER_TABLE_MAX)}, peak {as_json['process_peak_rss_mb']:,.0f} "
            f"MiB, {as_json['output_mb']:,.1f} MB of JSON",
        )


#: The project's own packages (an editable install: their bytecode is not written by pip).
PACKAGES = ("syncd", "connectors", "tasks")


def compile_bytecode() -> None:
    """Write the project's bytecode before anything is timed, as installing the package
    does (``pip install`` compiles it), so that a timed process does not compile every
    module it imports from source: with ``PYTHONDONTWRITEBYTECODE`` set (as on the
    benchmark's machines) an editable install never writes it, and each new process
    paid about half a second for it (``syncd --help`` and the cold drop)."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in PACKAGES:
        compileall.compile_dir(root / package, quiet=1)


def help_seconds(tries: int = 5) -> float:
    """The best wall time of ``syncd --help`` as a new process, of ``tries``."""
    command = [str(Path(sys.executable).with_name("syncd")), "--help"]
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def _report_size(res: Result) -> list[str]:
    n = res["n"]
    rows: list[tuple[str, str]] = []

    def add(label: str, value: str) -> None:
        rows.append((label, value))

    setup, ingested, plans = res["setup"], res["ingest"], res["plans"]
    expected = res["gen"]["expected"]
    add("devices (baseline / next file)", f"{n:,} / {res['gen']['next_rows']:,}")
    add(
        "generated changes",
        f"{expected['update']:,} changed, {expected['create']:,} new, "
        f"{expected['delete']:,} removed",
    )
    for label, figures in (("baseline, empty store", setup["ingest"]), ("next file", ingested)):
        rate, took = figures["rows_per_s"], _fmt_s(figures["seconds"])
        add(f"CSV ingest rate, {label}", f"{rate:,.0f} rows/s ({took})")

    times = [p["seconds"] for p in plans]
    best = min(plans, key=lambda p: p["seconds"])
    add(
        "PLANNING: snapshot + mirror -> change rows",
        f"best {_fmt_s(min(times))}, median {_fmt_s(statistics.median(times))} "
        f"of {len(times)}{_verdict(min(times), PLANNING_TARGET_S.get(n))}",
    )
    for step, seconds in best["steps"].items():
        add(f"  {step}", _fmt_s(seconds))
    add("  plan counts", ", ".join(f"{k} {v:,}" for k, v in best["counts"].items()))
    add("  change rows committed", f"{best['change_rows']:,}")
    matched = all(p["counts_match"] for p in plans)
    add("  counts match the generated changes", "yes" if matched else "NO")

    plan_peak = max(p["peak_rss_mb"] for p in plans)
    add(
        "peak RSS, planning process",
        f"{plan_peak:,.0f} MiB (RSS before planning {best['rss_before_mb']:,.0f} MiB)",
    )
    add("peak RSS, ingest process (next file)", f"{ingested['peak_rss_mb']:,.0f} MiB")
    run_peaks = [plan_peak, ingested["peak_rss_mb"]]
    refreshed = res["refresh"]
    if refreshed is not None:
        run_peaks.append(refreshed["peak_rss_mb"])
        add(
            "mirror refresh, unchanged inventory",
            f"{_fmt_s(refreshed['store_s'])} in the store "
            f"(+{_fmt_s(refreshed['building_devices_s'])} building the listed rows)",
        )
        add("peak RSS, refresh process", f"{refreshed['peak_rss_mb']:,.0f} MiB")
    peak = max(run_peaks)
    add(
        "peak RSS, whole run (max of its processes)",
        f"{peak:,.0f} MiB{_verdict(peak, MEMORY_TARGET_MIB.get(n))}",
    )
    whole = res.get("whole")
    if whole:
        add(
            "peak RSS, ingest + refresh + plan in one process",
            f"{whole['peak_rss_mb']:,.0f} MiB (planning {_fmt_s(whole['plan_s'])} there, "
            f"counts match: {'yes' if whole['counts_match'] else 'NO'})"
            f"{_verdict(whole['peak_rss_mb'], MEMORY_TARGET_MIB.get(n))}",
        )

    full, mark = setup["full_plan"], setup["mark_synced"]
    add(
        "set-up: first full plan (every serial)",
        f"{_fmt_s(full['seconds'])} for {full['candidates']:,} candidates",
    )
    add(
        "set-up: mark synced / peak RSS",
        f"{_fmt_s(mark['seconds'])} ({mark['method']}) / {setup['peak_rss_mb']:,.0f} MiB",
    )

    _report_issue9(res, add)

    ds = res["diffsync"]
    if isinstance(ds, str):
        add("diffsync", ds)
    else:
        fastest = min(times)
        target = DIFFSYNC_TARGET_X.get(n)
        for label, key in (("diff only", "diff_s"), ("load + diff", "load_and_diff_s")):
            factor = ds[key] / fastest
            add(
                f"diffsync {label}",
                f"{_fmt_s(ds[key])} = {factor:,.1f}x syncd planning"
                f"{_verdict(factor, target, more_is_better=True)}",
            )
        found = ds["summary"]
        add(
            "  diffsync counts",
            ", ".join(f"{k} {found.get(k, 0):,}" for k in ("create", "update", "delete"))
            + f", no-change {found.get('no-change', 0):,}",
        )
        add(
            "  diffsync peak RSS",
            f"{ds['peak_rss_mb']:,.0f} MiB (with the CSV rows in memory: "
            f"{ds['rss_before_mb']:,.0f} MiB before loading)",
        )
    width = max(len(label) for label, _ in rows)
    out = ["", f"== reconcile benchmark, N = {n:,} (seed {res['seed']}) =="]
    out.extend(f"{label:<{width}}  {value}" for label, value in rows)
    return out


# -- command line -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command line (shared by ``python -m benchmarks``)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Reconciliation benchmark: CSV ingest, planning, peak memory, diffsync.",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000], help="default: 100000")
    p.add_argument("--million", action="store_true", help="also run 1,000,000 devices")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--repeat", type=int, default=3, help="planning runs per size (fresh copies)")
    p.add_argument(
        "--diffsync",
        choices=("auto", "always", "never"),
        default="auto",
        help="auto: only up to --diffsync-auto-max devices",
    )
    p.add_argument("--diffsync-auto-max", type=int, default=100_000)
    p.add_argument("--diffsync-timeout", type=float, default=600.0, help="seconds")
    p.add_argument(
        "--diffsync-memory-gb", type=float, default=12.0, help="address-space cap (0: none)"
    )
    p.add_argument(
        "--mark-synced",
        choices=("sql", "record-write"),
        default="sql",
        help="how set-up marks the first plan applied (see the module docstring)",
    )
    p.add_argument("--no-refresh", dest="refresh", action="store_false")
    p.add_argument(
        "--no-cold",
        dest="cold",
        action="store_false",
        help="skip the cold drop (whole `syncd plan` processes against the sandbox)",
    )
    p.add_argument(
        "--cold-max",
        type=int,
        default=100_000,
        help="the largest size the cold drop runs at (a dry run holds its whole plan)",
    )
    p.add_argument(
        "--one-process",
        action="store_true",
        help="also run ingest + refresh + plan in one process (its peak RSS)",
    )
    p.add_argument(
        "--postgres",
        action="store_true",
        help="run on a throw-away PostgreSQL cluster on loopback instead of SQLite "
        "(needs the PostgreSQL binaries; no cold drop, no diffsync)",
    )
    p.add_argument("--workdir", type=Path, help="default: a temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the generated files and database")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    # internal: one phase in a subprocess
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--database", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark for every size and print the table."""
    args = parser().parse_args(argv)
    if args.phase:
        run_phase(args)
        return
    if args.postgres:
        _start_postgres(args)
    compile_bytecode()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    sizes = list(args.sizes)
    if args.million and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    results = [bench_size(n, args, root) for n in sizes]
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    print(report(results))
    if args.workdir is None and not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def _start_postgres(args: argparse.Namespace) -> None:
    """A throw-away PostgreSQL cluster on loopback (the tests' own: ``tests/pg.py``),
    used by every phase through ``$SYNCD_BENCH_STORE``; the cold drop and diffsync are
    left to the SQLite run."""
    global STORE_SERVER  # noqa: PLW0603 - set once, before any phase starts
    from tests.pg import start_server

    server = start_server()
    STORE_SERVER = server.url("postgres").rsplit("/", 1)[0]
    os.environ["SYNCD_BENCH_STORE"] = STORE_SERVER
    args.cold = False
    args.diffsync = "never"


if __name__ == "__main__":
    main()
