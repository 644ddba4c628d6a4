"""Reading a huge CSV file costs bounded memory: peak RSS measured in a subprocess
(``VmHWM``) while a file is checked (``scan_file``) and read (``read_items``) whole.

CI reads 64 MB single-line files and an 8 MB long one (reading rows costs time, not
memory); the nightly profile reads 1 GB of each. Three shapes: one enormous line with
no line break at all, a header and then one enormous field, and a long file of
ordinary rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.profiles import NIGHTLY

SIZE = (1 << 30) if NIGHTLY else (64 << 20)
LONG_SIZE = (1 << 30) if NIGHTLY else (8 << 20)
#: The most the peak RSS may grow while a file is read, whatever its size.
BUDGET = 48 << 20
CHUNK = 1 << 20

_MEASURE = """
import json, sys
from pathlib import Path
from connectors.csv_drop.encoding import scan_file
from connectors.csv_drop.reader import ReadOptions, ReadStats, read_items

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

path = Path(sys.argv[1])
warm = Path(sys.argv[2])
scan_file(lambda: warm.open("rb"), encoding="auto", legacy_encoding="cp1252")
# The libraries a read loads (pyarrow, for the columnar path) are loaded once, whatever
# the file: read a small file first, then measure what a big one adds.
warm_options = ReadOptions("m", "warm.csv")
for _ in read_items(lambda: warm.open("rb"), encoding="utf-8", options=warm_options,
                    stats=ReadStats()):
    pass
before = hwm()
scan = scan_file(lambda: path.open("rb"), encoding="auto", legacy_encoding="cp1252")
stats = ReadStats()
items = 0
if not scan.problem:
    options = ReadOptions("m", "big.csv")
    opened = lambda: path.open("rb")
    for _ in read_items(opened, encoding=scan.encoding, options=options, stats=stats):
        items += 1
print(json.dumps({"grew": hwm() - before, "scan": scan.problem, "problem": stats.problem,
                  "records": stats.records, "rejects": stats.rejects, "items": items}))
"""


def _write(path: Path, head: bytes, fill: bytes, size: int) -> None:
    with path.open("wb") as out:
        out.write(head)
        block = fill * (CHUNK // len(fill))
        written = len(head)
        while written < size:
            out.write(block)
            written += len(block)


def _measure(path: Path, tmp_path: Path) -> dict[str, object]:
    warm = tmp_path / "warm.csv"
    warm.write_text("serial_number,name\nSN1,a\n", encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(warm)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        timeout=1800,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_one_line_without_a_break_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    _write(path, b"", b"x" * 64, SIZE)
    result = _measure(path, tmp_path)
    assert isinstance(result["grew"], int)
    assert result["grew"] < BUDGET, result
    assert "header (line 1) unreadable" in str(result["problem"])


@pytest.mark.slow
def test_one_enormous_field_is_one_reject_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    _write(path, b'serial_number,name\nSN1,"', b"y" * 64, SIZE)
    result = _measure(path, tmp_path)
    assert isinstance(result["grew"], int)
    assert result["grew"] < BUDGET, result
    assert (result["records"], result["rejects"], result["items"]) == (0, 1, 1)


@pytest.mark.slow
def test_a_long_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row = b"SN0000000000,switch-0000000000,10.0.0.1\n"
    _write(path, b"serial_number,name,ip\n", row, LONG_SIZE)
    result = _measure(path, tmp_path)
    assert isinstance(result["grew"], int)
    assert result["grew"] < BUDGET, result
    rows = (path.stat().st_size - len(b"serial_number,name,ip\n")) // len(row)
    assert (result["records"], result["rejects"]) == (rows, 0)
