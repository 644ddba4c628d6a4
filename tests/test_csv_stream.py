"""Large files are streamed: memory stays flat however many rows a file has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROWS = 200_000

CHILD = """
import resource, sys
from pathlib import Path
from connectors.csv_drop import CsvDropConfig, CsvDropConnector
from syncd.records import DeviceRecord
c = CsvDropConnector("procurement", CsvDropConfig(inbox=Path(sys.argv[1]), stable_seconds=0))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
records = rejects = 0
for batch in c.fetch():
    for item in batch.items():
        if type(item) is DeviceRecord:
            records += 1
        else:
            rejects += 1
    accepted = batch.verdict.accepted
    batch.commit()
grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print("@@", records, rejects, accepted, grown_kib * 1024)
"""


def write_big_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("serial,hostname,model,tenant,mgmt_ip,mac,site,status,firmware\n")
        for i in range(rows):
            out.write(
                f"SN{i:09d},dev-{i},C9300-48P,acme,10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},"
                f"00:1b:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:0{i % 10},"
                f"Site {i % 50},{'up' if i % 2 else 'down'},17.9.{i % 5}\n"
            )
        out.write("BAD-1,x,C9300,acme,10.0.0.999,,,up,\n")


def test_a_200k_row_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = inbox / "big.csv"
    write_big_file(big, ROWS)
    size = big.stat().st_size
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(inbox)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("@@ "))
    records, rejects, accepted, grown = line.split()[1:]
    assert (int(records), int(rejects), accepted) == (ROWS, 1, "True")
    # Loading the file whole would take at least its size again; streaming takes a few MiB.
    assert int(grown) < size / 3, f"memory grew {int(grown) >> 20} MiB for a {size >> 20} MiB file"
    report = (inbox / "processed" / "big.csv.report.txt").read_text()
    assert f"line {ROWS + 2}: column 'mgmt_ip' (ip_address): '10.0.0.999'" in report
