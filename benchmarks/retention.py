"""Retention benchmark (issue 10, point 4): the audit queries at 5M change rows, and a prune.

Run: ``.venv/bin/python -m benchmarks retention`` (``--help`` for the rest: ``--rows``,
``--backends``, ``--pg-url``, ``--repeat``, ``--json``, ``--explain``). It prints
figures with their targets beside them; nothing fails on timing. Figures and method:
``docs/benchmarks.md``, last section.

For each backend (SQLite, and PostgreSQL: a throw-away server started on 127.0.0.1 as
the tests do, with ``fsync`` on, unless ``--pg-url`` names one):

1. **build** a store at the newest schema (``Store.open``) and fill it with bulk SQL
   (``INSERT ... SELECT`` over a generated series, not the API): N change rows (default
   5,000,000) over two years of runs: one first sync of N/5 creates, then runs of
   1,000 updates; N/5 serials, each changed about five times, plus one hot serial
   changed in every run (N/250 changes); 90 % applied, 7 % skipped, 3 % failed; one
   old held run and the three newest runs still pending; N/20 rejects. PostgreSQL is
   then analysed (autovacuum's steady state); SQLite is not (syncd never runs ANALYZE).
2. **queries**, through ``Store.changes`` as the audit faces call it (rows decoded
   into ``ChangeRow``), each ``--repeat`` times with random arguments, p50 and p99:
   a serial's history (newest first, first page of 50); the hot serial's history
   paged back from a random cursor; a page of 100 of a 1,000-change run, and of the
   first sync's run (N/5 changes), each from a random cursor (``before_id``).
3. **prune** everything older than one year (about 60 % of the rows) with its export
   (``syncd.service.retention.prune``: chunks of 5,000, each fsync'd before its
   rows are deleted): the dry run's time, the prune's time and rate, the longest
   write transaction (what the daemon's writers may wait for), the export's size.
4. the **queries again** on what is left.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from syncd.config import RetentionSettings
from syncd.service.retention import prune
from syncd.store import Store
from syncd.store import retention as retention_store
from syncd.store.tables import CHANGE, REJECT, SYNC_RUN

TARGET_MS = 50.0
START = datetime(2024, 12, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
HOT = "HOT00000001"
Result = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    """The generated audit log (see the module)."""

    rows: int
    per_run: int = 1000
    hot_every: int = 200

    @property
    def first(self) -> int:
        """Changes of run 1, the first sync (ids 1..first)."""
        return self.rows // 5

    @property
    def serials(self) -> int:
        return self.rows // 5

    @property
    def runs(self) -> int:
        """Runs after the first (ids 2..runs + 1)."""
        return max(1, (self.rows - self.first) // self.per_run)

    @property
    def rejects(self) -> int:
        return self.rows // 20

    @property
    def held_run(self) -> int:
        return 2 + self.runs // 10

    def started(self, run: int) -> datetime:
        return START + SPAN * (run - 1) / (self.runs + 1)

    def run_of(self, change_id: int) -> int:
        if change_id <= self.first:
            return 1
        return 2 + (change_id - self.first - 1) // self.per_run


# -- building --------------------------------------------------------------------------------


def _json(dialect: str, expr: str) -> str:
    expr = expr.replace('":', '"\\:')  # a literal colon for ``sa.text``, not a parameter
    return f"CAST({expr} AS json)" if dialect == "postgresql" else expr


def _pad(dialect: str, expr: str) -> str:
    if dialect == "postgresql":
        return f"lpad(CAST({expr} AS text), 8, '0')"
    return f"printf('%08d', {expr})"


def _series(dialect: str) -> str:
    """``g(id)`` from :lo to :hi."""
    if dialect == "postgresql":
        return "generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g(id)"
    return "g"


def _with_series(dialect: str) -> str:
    if dialect == "postgresql":
        return ""
    return "WITH RECURSIVE g(id) AS (SELECT :lo UNION ALL SELECT id + 1 FROM g WHERE id < :hi) "


def change_sql(dialect: str, shape: Shape) -> str:
    """``INSERT ... SELECT`` of the change rows with ids :lo..:hi (see the module)."""

    def j(expr: str) -> str:
        return _json(dialect, expr)

    serial = (
        f"CASE WHEN g.id <= {shape.first} THEN 'SN' || {_pad(dialect, 'g.id')} "
        f"WHEN g.id % {shape.hot_every} = 0 THEN '{HOT}' "
        f"ELSE 'SN' || {_pad(dialect, f'(g.id * 7919) % {shape.serials} + 1')} END"
    )
    create = (
        """'{"name":{"before":null,"after":"dev-' || g.id || '","before_known":true},"""
        """"type":{"before":null,"after":3,"before_known":true},"""
        """"organization":{"before":null,"after":123,"before_known":true},"""
        """"ip_address":{"before":null,"after":"10.0.0.1","before_known":true},"""
        """"location":{"before":null,"after":"DC1","before_known":true}}'"""
    )
    update = (
        """'{"name":{"before":"dev-old","after":"dev-' || g.id || '","before_known":true},"""
        """"location":{"before":"DC1","after":"DC2","before_known":true}}'"""
    )
    status = (
        "CASE r.status WHEN 'held' THEN 'held' WHEN 'applying' THEN 'pending' "
        "ELSE CASE WHEN g.id % 100 < 3 THEN 'failed' WHEN g.id % 100 < 10 THEN 'skipped' "
        "ELSE 'applied' END END"
    )
    response = """'{"status_code":200,"detail":"OK","method":"PATCH"}'"""
    sources = """'["procurement"]'"""
    origins = """'["inbox/po-' || r.id || '.csv:' || (g.id % 1000 + 2) || '"]'"""
    run_id = (
        f"CASE WHEN g.id <= {shape.first} THEN 1 "
        f"ELSE 2 + (g.id - {shape.first} - 1) / {shape.per_run} END"
    )
    return (
        _with_series(dialect) + "INSERT INTO change (id, run_id, serial_number, operation, "
        "changes, reason, sources, origins, status, attempts, response, error, created_at, "
        "updated_at, applied_at, claimed_by, lease_until) "
        f"SELECT g.id, r.id, {serial}, "
        f"CASE WHEN g.id <= {shape.first} THEN 'create' ELSE 'update' END, "
        f"{j(f'CASE WHEN g.id <= {shape.first} THEN {create} ELSE {update} END')}, "
        "'name changed in procurement', "
        f"{j(sources)}, {j(origins)}, "
        f"{status}, 1, {j(response)}, NULL, r.started_at, r.started_at, "
        f"CASE WHEN {status} = 'applied' THEN r.started_at END, NULL, NULL "
        f"FROM {_series(dialect)} JOIN sync_run r ON r.id = {run_id}"
    )


def reject_sql(dialect: str, shape: Shape) -> str:
    """``INSERT ... SELECT`` of the rejects with ids :lo..:hi, spread over the runs."""
    return (
        _with_series(dialect) + "INSERT INTO reject (id, run_id, batch_id, source, location, "
        "reason, serial_number, created_at) "
        "SELECT g.id, r.id, NULL, 'procurement', "
        "'inbox/po-' || r.id || '.csv:' || (g.id % 500 + 2), "
        "'serial_number: empty (a device needs its serial)', NULL, r.started_at "
        f"FROM {_series(dialect)} JOIN sync_run r ON r.id = 2 + (g.id - 1) % {shape.runs}"
    )


def build(store: Store, shape: Shape, batch: int = 500_000) -> Result:
    """Fill an empty store (see the module); returns the build's timings."""
    started = time.perf_counter()
    runs = [
        {
            "id": run,
            "trigger": "cli" if run % 7 == 0 else "schedule",
            "started_at": shape.started(run),
            "finished_at": shape.started(run),
            "status": _run_status(shape, run),
            "policy_fingerprint": "fp",
            "summary": {"operations": {"update": shape.per_run}},
        }
        for run in range(1, shape.runs + 2)
    ]
    dialect = store.dialect
    with store.engine.begin() as conn:
        conn.execute(SYNC_RUN.insert(), runs)
    for sql, total in (
        (change_sql(dialect, shape), shape.rows),
        (reject_sql(dialect, shape), shape.rejects),
    ):
        for lo in range(1, total + 1, batch):
            with store.engine.begin() as conn:
                conn.execute(sa.text(sql), {"lo": lo, "hi": min(total, lo + batch - 1)})
    loaded = time.perf_counter()
    with store.engine.connect() as conn:
        if dialect == "postgresql":
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("sync_run", "change", "reject"):
                auto.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            auto.exec_driver_sql("VACUUM ANALYZE")
        counted = conn.execute(sa.select(sa.func.count()).select_from(CHANGE)).scalar_one()
    assert counted == shape.rows, counted
    return {"load_s": loaded - started, "analyse_s": time.perf_counter() - loaded}


def _run_status(shape: Shape, run: int) -> str:
    if run == shape.held_run:
        return "held"
    if run > shape.runs - 2:
        return "applying"
    return "done"


# -- measuring -------------------------------------------------------------------------------


def timed(call: Callable[[], int], repeat: int) -> Result:
    """p50 / p99 / max of ``repeat`` calls, milliseconds, and the rows they returned."""
    times, rows = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows += call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, round(len(times) * 0.99) - 1)],
        "max_ms": times[-1],
        "calls": repeat,
        "rows_per_call": rows / repeat,
    }


def queries(
    store: Store, shape: Shape, repeat: int, seed: int, first_kept: int = 1
) -> dict[str, Result]:
    """The four query shapes (see the module), each timed ``repeat`` times; after a
    prune (``first_kept``: the oldest run with changes left) of the runs that are left."""
    rng = random.Random(seed)
    last_id = shape.rows

    def history() -> int:
        serial = f"SN{rng.randint(1, shape.serials):08d}"
        return len(store.changes(serial=serial, limit=50))

    def hot_history() -> int:
        cursor = rng.randint(shape.first + 1, last_id)
        return len(store.changes(serial=HOT, limit=50, before_id=cursor))

    def small_run() -> int:
        run = rng.randint(max(2, first_kept), shape.runs + 1)
        lo = shape.first + (run - 2) * shape.per_run + 1
        cursor = rng.choice([None, rng.randint(lo, lo + shape.per_run - 1)])
        return len(store.changes(run_id=run, limit=100, before_id=cursor))

    def first_run() -> int:
        cursor = rng.choice([None, rng.randint(1, shape.first)])
        return len(store.changes(run_id=1, limit=100, before_id=cursor))

    shapes = {
        "serial history, first page of 50": history,
        f"serial history paged back ({HOT}, {shape.rows // shape.hot_every:,} changes)": (
            hot_history
        ),
        f"page of 100 of a {shape.per_run:,}-change run (cursor by id)": small_run,
        f"page of 100 of the {shape.first:,}-change first run (cursor by id)": first_run,
    }
    if first_kept > 1:  # the first run's changes are gone
        shapes = {name: call for name, call in shapes.items() if call is not first_run}
    for call in shapes.values():  # warm the caches and the connection pool
        for _ in range(5):
            call()
    return {name: timed(call, repeat) for name, call in shapes.items()}


@contextmanager
def watched_transactions() -> Iterator[list[float]]:
    """The duration of every delete transaction of a prune (the writer lock's hold)."""
    durations: list[float] = []
    real = retention_store._Pruner.delete

    def delete(self: Any, *args: Any) -> None:
        start = time.perf_counter()
        try:
            real(self, *args)
        finally:
            durations.append(time.perf_counter() - start)

    retention_store._Pruner.delete = delete  # type: ignore[method-assign,assignment]
    try:
        yield durations
    finally:
        retention_store._Pruner.delete = real  # type: ignore[method-assign]


def prune_all(store: Store, shape: Shape, folder: Path) -> Result:
    """Prune everything older than a year, with its export (see the module)."""
    settings = RetentionSettings(
        changes_max_age_days=365,
        rejects_max_age_days=365,
        idle_runs_max_age_hours=0,
        export_dir=folder,
    )
    now = START + SPAN + timedelta(days=1)
    start = time.perf_counter()
    preview = prune(store, settings, dry_run=True, now=now)
    dry = time.perf_counter() - start
    with watched_transactions() as durations:
        start = time.perf_counter()
        report = prune(store, settings, now=now)
        seconds = time.perf_counter() - start
    assert report.changes.rows == preview.changes.rows, (report, preview)
    rows = report.changes.rows + report.rejects.rows
    size = sum(f.stat().st_size for f in folder.glob("*.jsonl.gz"))
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(CHANGE)).scalar_one()
        live = conn.execute(
            sa.select(sa.func.count())
            .select_from(CHANGE)
            .where(CHANGE.c.status.in_(("pending", "held")))
        ).scalar_one()
        rejects_left = conn.execute(sa.select(sa.func.count()).select_from(REJECT)).scalar_one()
    return {
        "dry_run_s": dry,
        "prune_s": seconds,
        "changes_pruned": report.changes.rows,
        "rejects_pruned": report.rejects.rows,
        "share": report.changes.rows / shape.rows,
        "rows_per_s": rows / seconds,
        "files": len(report.changes.files) + len(report.rejects.files),
        "export_mb": size / 1e6,
        "bytes_per_row": size / max(rows, 1),
        "transactions": len(durations),
        "longest_transaction_ms": max(durations, default=0) * 1000,
        "median_transaction_ms": statistics.median(durations) * 1000 if durations else 0,
        "changes_left": left,
        "live_left": live,
        "rejects_left": rejects_left,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def explain(store: Store) -> list[str]:
    """The plans of the two audit query shapes (a serial's history, a run's page), as
    ``Store.changes`` asks them."""
    from syncd.store.outbox import newest_first

    prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    queries = []
    for column, value, limit in (
        (CHANGE.c.serial_number, "SN00000042", 50),
        (CHANGE.c.run_id, 1, 100),
    ):
        where, order = newest_first(column, value, store.dialect)
        query = sa.select(CHANGE).where(*where, CHANGE.c.id < 10**9).order_by(*order)
        queries.append(query.limit(limit))
    lines = []
    with store.engine.connect() as conn:
        for query in queries:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            for row in conn.exec_driver_sql(prefix + str(compiled)):
                lines.append(" ".join(str(v) for v in row))
    return lines


# -- backends --------------------------------------------------------------------------------


@contextmanager
def backend_url(backend: str, root: Path, pg_url: str | None) -> Iterator[str]:
    """A fresh, empty database of ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{root / 'retention.db'}"
        return
    if pg_url:
        yield pg_url
        return
    from tests import pg  # the tests' throw-away server on 127.0.0.1

    server = pg.start_server()
    with sa.create_engine(server.url(), isolation_level="AUTOCOMMIT").connect() as conn:
        # the tests run it without fsync; a benchmark of durable deletes must not
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.exec_driver_sql(f"ALTER SYSTEM SET {setting} = on")
        conn.exec_driver_sql("SELECT pg_reload_conf()")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


def bench_backend(backend: str, args: argparse.Namespace, root: Path) -> Result:
    shape = Shape(args.rows)
    folder = root / f"export-{backend}"
    with backend_url(backend, root, args.pg_url) as url, Store.open(url) as store:
        print(f"[{backend}] building {shape.rows:,} change rows ...", flush=True)
        result: Result = {"backend": backend, "rows": shape.rows, "build": build(store, shape)}
        if backend == "postgresql":
            with store.engine.connect() as conn:
                result["server"] = conn.exec_driver_sql("SHOW server_version").scalar()
                result["fsync"] = conn.exec_driver_sql("SHOW fsync").scalar()
        result["size_mb"] = _size_mb(store, root)
        if args.explain:
            result["plans"] = explain(store)
        print(f"[{backend}] queries ...", flush=True)
        result["load_average"] = os.getloadavg()[0]  # other work on the machine
        result["queries"] = queries(store, shape, args.repeat, args.seed)
        print(f"[{backend}] prune ...", flush=True)
        result["prune"] = prune_all(store, shape, folder)
        print(f"[{backend}] queries after the prune ...", flush=True)
        with store.engine.connect() as conn:
            first_kept = conn.execute(sa.select(sa.func.min(CHANGE.c.run_id))).scalar_one()
        result["queries_after"] = queries(
            store, shape, max(20, args.repeat // 3), args.seed + 1, first_kept
        )
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _size_mb(store: Store, root: Path) -> float:
    if store.dialect == "sqlite":
        return sum(p.stat().st_size for p in root.glob("retention.db*")) / 1e6
    with store.engine.connect() as conn:
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return float(size or 0) / 1e6


# -- report ----------------------------------------------------------------------------------


def report(results: list[Result]) -> str:
    """The figures as a text table, targets beside them."""
    lines = []
    for result in results:
        build = result["build"]
        lines.append(
            f"\n== {result['backend']} {result.get('server', '')} ({result['rows']:,} change "
            f"rows, {result['size_mb']:,.0f} MB; built in {build['load_s']:.0f} s + "
            f"{build['analyse_s']:.0f} s analyse; load average {result['load_average']:.1f})"
        )
        for label, key in (("queries", "queries"), ("after the prune", "queries_after")):
            lines.append(f"  {label}: p50 / p99 / max ms (target: < {TARGET_MS:.0f} ms)")
            for name, figures in result[key].items():
                met = "met" if figures["p99_ms"] < TARGET_MS else "NOT met"
                lines.append(
                    f"    {name:<62} {figures['p50_ms']:7.2f} {figures['p99_ms']:7.2f} "
                    f"{figures['max_ms']:7.2f}  {met} ({figures['rows_per_call']:.0f} rows)"
                )
        p = result["prune"]
        lines += [
            f"  prune older than a year: {p['changes_pruned']:,} changes ({p['share']:.0%}) + "
            f"{p['rejects_pruned']:,} rejects in {p['prune_s']:.1f} s "
            f"({p['rows_per_s']:,.0f} rows/s; dry run {p['dry_run_s']:.1f} s)",
            f"    export: {p['files']:,} files, {p['export_mb']:,.1f} MB "
            f"({p['bytes_per_row']:.0f} bytes a row)",
            f"    write transactions: {p['transactions']:,}, median "
            f"{p['median_transaction_ms']:.0f} ms, longest {p['longest_transaction_ms']:.0f} ms",
            f"    left: {p['changes_left']:,} changes ({p['live_left']:,} pending or held, all "
            f"kept), {p['rejects_left']:,} rejects; peak RSS {p['peak_rss_mb']:.0f} MiB",
        ]
        for plan in result.get("plans", []):
            lines.append(f"    plan: {plan}")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import sqlite3

    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks retention", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--rows", type=int, default=5_000_000, help="change rows (default 5M)")
    p.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    p.add_argument("--pg-url", help="an empty PostgreSQL database (default: start a server)")
    p.add_argument("--repeat", type=int, default=300, help="calls per query shape")
    p.add_argument("--seed", type=int, default=20261214)
    p.add_argument("--explain", action="store_true", help="also print the query plans")
    p.add_argument("--workdir", type=Path, help="default: a temporary directory")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from syncd.log import configure

    configure(level="WARNING")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="syncd-retention-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        results = [bench_backend(backend, args, root) for backend in args.backends]
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    print(f"machine: {machine()}")
    print(report(results))


if __name__ == "__main__":
    main()
