"""Large files are streamed: memory stays flat however many rows a file has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROWS = 200_000
#: The columnar path reads a block of this many bytes at a time (a sixty-fourth of the file).
BLOCK = 1 << 18

CHILD = """
import resource, sys
from pathlib import Path
from connectors.csv_drop import CsvDropConfig, CsvDropConnector
from connectors.csv_drop import columnar
from syncd.records import DeviceRecord, RecordBlock
columnar.BLOCK_BYTES = int(sys.argv[2])
c = CsvDropConnector("procurement", CsvDropConfig(inbox=Path(sys.argv[1]), stable_seconds=0))
half = int(sys.argv[3]) // 2
records = rejects = blocks = 0
middle = None
for batch in c.fetch():
    for item in batch.blocks():
        if type(item) is RecordBlock:
            records += len(item)
            blocks += 1
        elif type(item) is DeviceRecord:
            records += 1
        else:
            rejects += 1
        if middle is None and records >= half:  # half read: libraries loaded, buffers made
            middle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    accepted = batch.verdict.accepted
    batch.commit()
grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - middle
print("@@", records, rejects, accepted, grown_kib * 1024, blocks)
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
        [sys.executable, "-c", CHILD, str(inbox), str(BLOCK), str(ROWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("@@ "))
    records, rejects, accepted, grown, blocks = line.split()[1:]
    assert (int(records), int(rejects), accepted) == (ROWS, 1, "True")
    # Memory is flat: the second half of the file costs no more than the first. Holding
    # the file whole would grow by half its size (and its objects) over the second half.
    assert int(grown) < size / 3, f"memory grew {int(grown) >> 20} MiB over the second half"
    assert int(blocks) >= size // BLOCK  # read a block at a time, never whole
    report = (inbox / "processed" / "big.csv.report.txt").read_text()
    assert f"line {ROWS + 2}: column 'mgmt_ip' (ip_address): '10.0.0.999'" in report
