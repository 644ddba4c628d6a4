"""How long ``syncd.engine.plan`` takes for 100k and 1M candidates (not a test).

Run: ``.venv/bin/python benchmarks/engine_timing.py [--sizes 100000 1000000]``.
Three shapes: a first run (every serial new: creates, with two sources for a tenth
of them), a re-plan of an inventory already in step (e.g. after a policy change:
every serial compared, nothing to do), and a mixed run (updates, adopts, hand-edit
conflicts, orphans, rejects). Only ``plan()`` is timed, not building its input:
the best of three runs, as CPU time of this process (steadier than the wall clock
on a shared machine) and as wall time.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime

from syncd.engine import (
    Candidate,
    Catalogue,
    MirrorEntry,
    OrgInfo,
    PlanContext,
    Policy,
    Tombstone,
    TypeInfo,
    plan,
)
from syncd.records import DeviceRecord

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CATALOGUE = Catalogue(
    types={i: TypeInfo(name=f"kind{i % 5}", model=f"M-{i}") for i in range(1, 41)},
    organizations={i: OrgInfo(name=f"tenant-{i}") for i in range(1, 21)},
)
POLICY = Policy.default(
    source_priority=("netbox", "csv"), orphan_grace_runs=1, orphan_grace_seconds=0
)


def _record(i: int, source: str = "netbox", **over: object) -> DeviceRecord:
    values: dict[str, object] = {
        "name": f"dev-{i}",
        "device_type": f"M-{i % 40 + 1}",
        "organization": f"tenant-{i % 20 + 1}",
        "ip_address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        "mac_address": f"00:11:22:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
        "location": f"site-{i % 300}",
        "description": "edge switch",
        "firmware_version": "17.9.4",
        **over,
    }
    return DeviceRecord(source=source, serial_number=f"SN{i:08d}", origin=f"{source}:{i}", **values)  # type: ignore[arg-type]


def _synced_mirror(i: int) -> MirrorEntry:
    values: dict[str, object] = {
        "name": f"dev-{i}",
        "type": i % 40 + 1,
        "organization": i % 20 + 1,
        "status": True,
        "ip_address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        "location": f"site-{i % 300}",
    }
    written = {
        **values,
        "mac_address": f"00:11:22:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
        "description": "edge switch",
        "firmware_version": "17.9.4",
    }
    del written["status"]
    return MirrorEntry(f"SN{i:08d}", values, written, "created")


def first_run(n: int) -> list[Candidate]:
    out = []
    for i in range(n):
        records = [_record(i)]
        if i % 10 == 0:
            records.append(_record(i, "csv", location=None, description="from procurement"))
        out.append(Candidate(f"SN{i:08d}", records))
    return out


def in_step(n: int) -> list[Candidate]:
    return [Candidate(f"SN{i:08d}", [_record(i)], _synced_mirror(i)) for i in range(n)]


def mixed(n: int) -> list[Candidate]:
    out = []
    for i in range(n):
        serial = f"SN{i:08d}"
        shape = i % 8
        mirror = _synced_mirror(i)
        if shape == 0:  # source moved the device
            out.append(Candidate(serial, [_record(i, location="moved")], mirror))
        elif shape == 1:  # hand edit in the inventory
            values = {**mirror.values, "name": "renamed-by-hand"}
            edited = MirrorEntry(serial, values, mirror.written, "created")
            out.append(Candidate(serial, [_record(i, name="dev-new")], edited))
        elif shape == 2:  # existing device, not ours yet
            out.append(
                Candidate(serial, [_record(i)], MirrorEntry(serial, mirror.values, {}, "unmanaged"))
            )
        elif shape == 3:  # orphan
            out.append(Candidate(serial, [], mirror, Tombstone(NOW, 2)))
        elif shape == 4:  # unmappable
            out.append(Candidate(serial, [_record(i, device_type="nonesuch")]))
        else:
            out.append(Candidate(serial, [_record(i)], mirror))
    return out


def _time(label: str, build: Callable[[int], list[Candidate]], n: int) -> None:
    candidates = build(n)
    context = PlanContext(now=NOW, owned_total=n, source_counts={"netbox": (n, n)})
    gc.collect()
    cpu = wall = float("inf")
    for _ in range(3):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = plan(candidates, POLICY, CATALOGUE, context)
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    counts = {k: v for k, v in result.counts.items() if v and k != "candidates"}
    print(
        f"{label:>10} {n:>9,}: cpu {cpu:6.3f} s ({cpu / n * 1e6:5.2f} us/serial), "
        f"wall {wall:6.3f} s  {counts}"
    )
    del candidates, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    for n in args.sizes:
        for label, build in (("first run", first_run), ("in step", in_step), ("mixed", mixed)):
            _time(label, build, n)


if __name__ == "__main__":
    main()
