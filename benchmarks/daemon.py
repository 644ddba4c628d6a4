"""Daemon benchmark (issue 8): drain a backlog of pending changes with real processes.

Run: ``.venv/bin/python -m benchmarks.daemon`` (``--help`` for the rest). It prints
figures; nothing fails on timing. Method and measured figures: ``docs/benchmarks.md``.

For each scenario (``limited``: the sandbox answers after 100 ms and allows 50
requests/s, syncd is configured for 50/s; ``unlimited``: no latency, no limit) and each
deployment (the embedded ``syncd daemon``; 1, 2, 4 ``syncd worker`` processes on Redis
and PostgreSQL), from a clean state:

1. the sandbox is reset, the store is new, Redis is emptied;
2. ``--changes`` creates (10,000 by default) are planned and recorded in-process, as a
   run would (a CSV drop ingested, the empty inventory listed, the plan recorded), so
   they wait ``pending`` in the outbox;
3. the processes start (``syncd beat`` too when scaling out, for the sweeper, which
   dispatches the backlog within a second); the drain is over when every change is
   ``applied``.

Figures, from the sandbox's request log and the store: writes/s (applied creates over
the time from the first write's start to the last one's), the share of the limit that
is, the most requests that started in any one second, and p50/p99 of the change
latency: from the drain's first write (the moment the backlog was handed over) to the
change's ``applied_at``, i.e. how long a change waited behind the backlog. Worker
start-up (a few seconds of imports) is outside every figure.

Needs ``redis-server`` and PostgreSQL's binaries (the test command installs both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.sandbox.testing import RequestRecord, SandboxProcess, SandboxToken
from syncd.store import Store
from tests.pg import PostgresServer, start_server
from tests.procs import RedisServer, SyncdProcess, redis_binary
from tests.runsupport import RunEnv, rows

LIMITED: dict[str, Any] = {"latency_ms": 100.0, "limit": 50}
UNLIMITED: dict[str, Any] = {"latency_ms": 0.0, "limit": None}
SCENARIOS: dict[str, dict[str, Any]] = {"limited": LIMITED, "unlimited": UNLIMITED}


@dataclass(frozen=True)
class Deployment:
    """``embedded`` (one ``syncd daemon``) or ``workers`` ``syncd worker`` processes."""

    workers: int
    embedded: bool = False

    @property
    def label(self) -> str:
        if self.embedded:
            return "embedded daemon"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''} (Redis)"


# -- figures -----------------------------------------------------------------------------------


def busiest_second(starts: Sequence[float]) -> int:
    """The most requests that started within any one second."""
    ordered = sorted(starts)
    best = first = 0
    for last, start in enumerate(ordered):
        while ordered[first] <= start - 1.0:
            first += 1
        best = max(best, last + 1 - first)
    return best


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def figures(
    log: Sequence[RequestRecord], applied: Sequence[datetime], limit: int | None
) -> dict[str, Any]:
    """The drain's figures (see the module)."""
    writes = sorted(r.start for r in log if r.method == "POST" and r.status == 201)
    span = writes[-1] - writes[0] if len(writes) > 1 else 0.0
    rate = (len(writes) - 1) / span if span > 0 else float("nan")
    waits = [stamp.timestamp() - writes[0] for stamp in applied] if writes else []
    return {
        "writes": len(writes),
        "requests": len(log),
        "throttled": sum(r.status == 429 for r in log),
        "seconds": round(span, 2),
        "writes_per_s": round(rate, 1),
        "share_of_limit": round(rate / limit, 3) if limit else None,
        "peak_in_any_second": busiest_second([r.start for r in log]),
        "latency_p50_s": round(percentile(waits, 0.50), 2),
        "latency_p99_s": round(percentile(waits, 0.99), 2),
        "request_ms_p50": round(statistics.median(r.duration_ms for r in log), 1) if log else None,
    }


# -- one drain ---------------------------------------------------------------------------------


@contextmanager
def _stopped_at_exit(procs: list[SyncdProcess]) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            if proc.running:
                proc.signal(signal.SIGTERM)
        for proc in procs:
            with suppress(AssertionError):
                proc.wait(60)
            proc.stop()


def drain(
    *,
    deployment: Deployment,
    scenario: dict[str, Any],
    changes: int,
    sandbox: SandboxProcess,
    redis: RedisServer,
    postgres: PostgresServer,
    root: Path,
    concurrency: int,
    timeout: float,
) -> dict[str, Any]:
    """Plan ``changes`` creates, let the deployment drain them, measure (see the module)."""
    folder = Path(tempfile.mkdtemp(prefix="drain-", dir=root))
    inbox = folder / "inbox"
    inbox.mkdir()
    if deployment.embedded:
        store_url = f"sqlite:///{folder / 'syncd.db'}"
    else:
        store_url = postgres.url(postgres.create_database())
        import redis as redis_client

        redis_client.Redis.from_url(redis.url).flushall()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=store_url)
    limit = scenario["limit"]
    env.inventory = {
        "rate_limit": {"requests_per_second": float(limit or 10_000), "burst": limit or 10_000},
        "max_connections": max(10, concurrency),
        "retry": {"attempts": 6, "wait_initial": 0.2, "wait_max": 2.0, "wait_jitter": 0.2},
    }
    env.daemon = {"data_dir": str(folder / "daemon"), "sweep_interval": 1}
    env.daemon["worker_concurrency"] = concurrency
    if not deployment.embedded:
        env.daemon["broker_url"] = redis.url
    sandbox.reset()
    sandbox.set_faults(
        latency_ms=scenario["latency_ms"], rate_limit=f"{limit}/s" if limit else None
    )

    env.drop(rows(changes))
    with env.runner() as runner:
        run_id = env.record_plan_only(runner)
    sandbox.clear_requests()

    config = env.write_config(folder / "syncd.toml")
    procs: list[SyncdProcess] = []
    with _stopped_at_exit(procs):
        if deployment.embedded:
            procs.append(env.spawn("daemon", config=config, log=folder / "daemon.log"))
        else:
            for n in range(deployment.workers):
                log = folder / f"worker{n + 1}.log"
                procs.append(env.spawn("worker", config=config, log=log))
            procs.append(env.spawn("beat", config=config, log=folder / "beat.log"))
        deadline = time.monotonic() + timeout
        with Store.open(store_url) as store:
            while store.change_counts(run_id).get("applied", 0) < changes:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"{deployment.label}: not drained after {timeout:.0f} s: "
                        f"{store.change_counts(run_id)}; logs in {folder}"
                    )
                if not all(p.running for p in procs):
                    dead = next(p for p in procs if not p.running)
                    raise SystemExit(f"{dead!r} exited:\n{dead.output()[-3000:]}")
                time.sleep(0.5)
            applied = [
                c.applied_at
                for c in store.changes(run_id=run_id, limit=changes + 10)
                if c.applied_at is not None
            ]
    result = figures(sandbox.requests(), applied, limit)
    result.update(deployment=deployment.label, changes=changes, resent=_resent(procs))
    return result


def _resent(procs: Sequence[SyncdProcess]) -> int:
    """Messages the sweeper sent again because a change's dispatch lease ran out while
    it still queued (``sweep.resend count=N`` in the workers' logs)."""
    total = 0
    for proc in procs:
        for line in proc.output().splitlines():
            if "sweep.resend" in line and "count=" in line:
                total += int(line.split("count=", 1)[1].split()[0])
    return total


# -- the report --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "load_at_start": f"{load:.2f}",
    }


def report(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    header = (
        f"{'deployment':<20} {'writes/s':>9} {'of limit':>9} {'peak/1s':>8} "
        f"{'p50 s':>7} {'p99 s':>7} {'429s':>5} {'drain s':>8} {'resent':>7}"
    )
    for name, rows_ in results.items():
        scenario = SCENARIOS[name]
        what = (
            f"{scenario['latency_ms']:.0f} ms latency, {scenario['limit']}/s limit"
            if scenario["limit"]
            else "no latency, no limit"
        )
        lines += [f"\n{name}: {what}", header]
        for row in rows_:
            share = f"{row['share_of_limit']:.0%}" if row["share_of_limit"] is not None else "-"
            lines.append(
                f"{row['deployment']:<20} {row['writes_per_s']:>9.1f} {share:>9} "
                f"{row['peak_in_any_second']:>8} {row['latency_p50_s']:>7.1f} "
                f"{row['latency_p99_s']:>7.1f} {row['throttled']:>5} {row['seconds']:>8.1f} "
                f"{row['resent']:>7}"
            )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m benchmarks.daemon", description=__doc__)
    parse.add_argument("--changes", type=int, default=10_000, help="pending creates to drain")
    parse.add_argument(
        "--scenarios", nargs="+", choices=sorted(SCENARIOS), default=["limited", "unlimited"]
    )
    parse.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parse.add_argument(
        "--no-embedded", action="store_true", help="skip the embedded daemon's drain"
    )
    parse.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parse.add_argument("--timeout", type=float, default=1800, help="seconds per drain at most")
    parse.add_argument("--json", type=Path, help="also write the figures here")
    return parse


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # SIGTERM (or Ctrl-C) stops the processes it started before it exits.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    deployments = [] if args.no_embedded else [Deployment(1, embedded=True)]
    deployments += [Deployment(n) for n in args.workers]
    root = Path(tempfile.mkdtemp(prefix="syncd-daemon-bench-"))
    postgres = start_server()
    redis = RedisServer(redis_binary(), root / "redis").start()
    tokens = [SandboxToken.generate(), SandboxToken.generate({123})]
    results: dict[str, list[dict[str, Any]]] = {}
    info = machine()
    try:
        with SandboxProcess(tokens=tokens, args=["--request-log-max", "2000000"]) as sandbox:
            for name in args.scenarios:
                for deployment in deployments:
                    print(f"{name}: {deployment.label} ...", file=sys.stderr, flush=True)
                    result = drain(
                        deployment=deployment,
                        scenario=SCENARIOS[name],
                        changes=args.changes,
                        sandbox=sandbox,
                        redis=redis,
                        postgres=postgres,
                        root=root,
                        concurrency=args.concurrency,
                        timeout=args.timeout,
                    )
                    print(json.dumps(result), file=sys.stderr, flush=True)
                    results.setdefault(name, []).append(result)
    finally:
        redis.stop()
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    print(f"machine: {info}")
    print(report(results))


if __name__ == "__main__":
    main()
