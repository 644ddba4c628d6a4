"""Ingest alone (issue 9 point 1): the baseline CSV into an empty store, then the next
CSV over it, through the CSV connector and ``syncd.service.ingest`` as a run does.

``python -m benchmarks.ingest --rows 1000000 [--row-path] [--profile FILE]`` prints, for
each file, its rows, wall and CPU seconds and rows per second, and the load average when
measured. ``--row-path`` switches the columnar CSV path off (the figure to compare with).
SQLite by default; ``SYNCD_BENCH_STORE`` (a PostgreSQL server URL) as for the reconcile
benchmark. A benchmark prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.datagen import Scenario, write_csv
from benchmarks.reconcile import _create_database, _ingest_file, _quiet_logs, _store_url


def _timed(store: object, workdir: Path, path: Path, rows: int) -> dict[str, float]:
    cpu = time.process_time()
    result = _ingest_file(store, workdir, path, rows)  # type: ignore[arg-type]
    return {**result, "cpu_s": time.process_time() - cpu}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--row-path", action="store_true", help="columnar CSV path off")
    parser.add_argument("--profile", help="write a cProfile of the next file's ingest here")
    args = parser.parse_args(argv)
    from connectors.csv_drop import columnar
    from syncd.store import Store

    columnar.COLUMNAR = not args.row_path
    _quiet_logs()
    scenario = Scenario.build(args.rows, args.seed)
    with tempfile.TemporaryDirectory(prefix="syncd-ingest-") as tmp:
        workdir = Path(tmp)
        write_csv(workdir / "baseline.csv", scenario.baseline_rows())
        write_csv(workdir / "next.csv", scenario.next_rows())
        _create_database(workdir / "state.db")
        store = Store.open(_store_url(workdir / "state.db"))
        try:
            figures = {"baseline": _timed(store, workdir, workdir / "baseline.csv", scenario.n)}
            if args.profile:
                import cProfile

                with cProfile.Profile() as profile:
                    figures["next"] = _timed(
                        store, workdir, workdir / "next.csv", scenario.next_count
                    )
                profile.dump_stats(args.profile)
            else:
                figures["next"] = _timed(store, workdir, workdir / "next.csv", scenario.next_count)
        finally:
            store.close()
    path = "row path" if args.row_path else "columnar"
    print(f"{args.rows} rows, {path}, load average {os.getloadavg()[0]:.2f}")
    for name, got in figures.items():
        print(
            f"  {name:8} {got['rows']:>9} rows {got['seconds']:7.2f} s wall "
            f"{got['cpu_s']:7.2f} s CPU {got['rows_per_s']:>10,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
