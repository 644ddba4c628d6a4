"""The CSV reader's columnar path against its row path: the same answer, always.

A file is read three ways: columnar (pyarrow blocks, the row path for what they cannot
decide), by rows with ``FastRow``, and by rows with the full path alone. The records,
rejects, line numbers, counts and verdict must be identical, over the whole corpus
under every option that changes how rows are read, over the fuzz generator's hostile
files, and over generated plain files (the benchmark's shape, and rows built to sit on
every edge the columnar checks decide: quoting, spaces, address forms, status and
action words, lengths, extra columns). Each block's payload bytes must be exactly
``DeviceRecord.payload()`` of the record it stands for: the store hashes those bytes.
Small blocks put block boundaries everywhere.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.csv_drop import CsvDropConfig, CsvDropConnector, columnar, reader
from connectors.csv_drop.encoding import scan_file
from connectors.csv_drop.reader import ReadOptions, ReadStats, read_blocks
from syncd.records import DeviceRecord, RecordBlock, Reject
from tests import pg
from tests.fuzz.test_csv_reader import csv_files
from tests.profiles import examples

CORPUS = Path(__file__).parent / "data" / "csv"
FILES = sorted(p.name for p in CORPUS.iterdir() if p.name != "README.md")
OPTIONS: tuple[dict[str, Any], ...] = (
    {},
    {"empty_cells": "clear"},
    {"mode": "delta"},
    {"columns": {"Device": "name", "kunde": "organization", "NOTES": "ignore"}},
)
WAYS = ("columnar", "fast rows", "full rows")
db_url = pg.db_url


def _way(monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    monkeypatch.setattr(columnar, "COLUMNAR", way == "columnar")
    monkeypatch.setattr(reader, "FAST_ROWS", way != "full rows")


def _checked(blocks: Iterator[Any], seen: list[int]) -> Iterator[DeviceRecord | Reject]:
    """The items of ``blocks``, each block's payloads checked against its records."""
    for item in blocks:
        if type(item) is RecordBlock:
            seen.append(len(item))
            records = list(item.records())
            assert [r.payload() for r in records] == item.payloads
            yield from records
        else:
            yield item


def read_file(path: Path, encoding: str, options: ReadOptions) -> tuple[Any, ...]:
    """Everything a read tells: items, counts, problem (and how many rows came in blocks)."""
    stats = ReadStats()
    seen: list[int] = []
    blocks = read_blocks(lambda: path.open("rb"), encoding=encoding, options=options, stats=stats)
    items = list(_checked(blocks, seen))
    counts = (stats.records, stats.rejects, stats.bad_rows, stats.blank, stats.header_line)
    return items, counts, stats.problem, stats.delimiter, sum(seen)


def three_ways(
    monkeypatch: pytest.MonkeyPatch, path: Path, encoding: str, options: ReadOptions
) -> dict[str, tuple[Any, ...]]:
    found = {}
    for way in WAYS:
        _way(monkeypatch, way)
        found[way] = read_file(path, encoding, options)
    _way(monkeypatch, "columnar")
    return found


def assert_alike(found: dict[str, tuple[Any, ...]]) -> int:
    """The three reads agree; returns how many records the columnar path took in blocks."""
    columnar_read, *rows = found.values()
    for other in rows:
        assert columnar_read[:4] == other[:4]
        assert other[4] == 0
    return int(columnar_read[4])


@pytest.fixture(params=[columnar.BLOCK_BYTES, 97], ids=["blocks", "tiny-blocks"])
def block_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(columnar, "BLOCK_BYTES", request.param)
    return int(request.param)


# -- the corpus ------------------------------------------------------------------------------


def _batch(tmp: Path, name: str, options: dict[str, Any]) -> tuple[Any, ...]:
    inbox = tmp / "inbox"
    inbox.mkdir(parents=True)
    shutil.copyfile(CORPUS / name, inbox / name)
    config = CsvDropConfig.model_validate({"inbox": inbox, "stable_seconds": 0, **options})
    found = []
    for batch in CsvDropConnector("procurement", config).fetch():
        items = [repr(i).replace(str(tmp), "TMP") for i in _checked(batch.blocks(), [])]
        found.append((batch.origin.replace(str(tmp), "TMP"), items, batch.verdict))
    return tuple(found)


@pytest.mark.parametrize("name", FILES)
def test_the_corpus_reads_alike_every_way(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    for number, options in enumerate(OPTIONS):
        results = []
        for way in WAYS:
            _way(monkeypatch, way)
            results.append(_batch(tmp_path / f"{way}{number}".replace(" ", ""), name, options))
        assert results[0] == results[1] == results[2], (name, options)


def test_the_columnar_path_takes_the_plain_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It is not a path only ever skipped: a plain file's records come in blocks."""
    path = tmp_path / "plain.csv"
    path.write_text(
        "Serial,Name,Model,Tenant,IP,MAC,Status,Description\n"
        'SN1,sw1,C9300,acme,10.0.0.1,00-1B-54-AA-01-02,up,"a, b"\n'
        "SN2,sw2,C9300,acme,10.0.0.2,001b.54aa.0103,No,\n"
        "SN3,sw3,C9300,acme,::1,,,\n",
        encoding="utf-8",
    )
    options = ReadOptions(source="s", label="plain.csv")
    found = three_ways(monkeypatch, path, "utf-8", options)
    assert assert_alike(found) == 2  # the IPv6 row takes the row path: canonical form
    items = found["columnar"][0]
    assert [(r.serial_number, r.mac_address, r.status, r.origin) for r in items] == [
        ("SN1", "00:1b:54:aa:01:02", True, "plain.csv:2"),
        ("SN2", "00:1b:54:aa:01:03", False, "plain.csv:3"),
        ("SN3", None, None, "plain.csv:4"),
    ]
    assert items[2].ip_address == "::1"


# -- edges, one by one -----------------------------------------------------------------------

HEADER = "serial,name,type,org,ip,mac,status,location,description,firmware,notes,extra"
EDGES: tuple[tuple[str, str], ...] = (
    ("plain", "SN1,sw1,C9300,acme,10.0.0.1,aa:bb:cc:dd:ee:ff,up,fra,desc,17.1,n,x"),
    ("spaces", "  SN2 , sw 2 ,C9300 , acme,  10.0.0.2 , AABB.CCDD.EEFF , DOWN ,,,,,"),
    ("quoted", '"SN3","sw ""three""","C9300","acme","","","","","a,b","","",""'),
    ("backslash", 'SN4,sw\\4,C9300,acme,,,,,"C:\\path\\",,"q""uote",'),
    ("space before quote", 'SN5, "sw5",C9300,acme,,,,,,,,'),
    ("text after quote", '"SN6"x,sw6,C9300,acme,,,,,,,,'),
    ("quote in a bare field", 'SN7,sw"7,C9300,acme,,,,,,,,'),
    ("trailing delimiter", "SN8,sw8,C9300,acme,,,,,,,,,"),
    ("short row", "SN9,sw9,C9300"),
    ("blank", ""),
    ("spaces only", "     "),
    ("empty cells", ",,,,,,,,,,,"),
    ("no serial", ",sw10,C9300,acme,,,,,,,,"),
    ("non-ASCII", "SN11,Zürich-1,C9300,acme,,,,,,,,"),
    ("no-break space", "SN12,sw\xa012,C9300,acme,,,,,,,,"),
    ("tab", "SN13,sw13,C9300,acme,,,,,a\tb,,,"),
    ("DEL", "SN14,sw14\x7f,C9300,acme,,,,,,,,"),
    ("bad ip", "SN15,sw15,C9300,acme,10.0.0.256,,,,,,,"),
    ("ip with prefix", "SN16,sw16,C9300,acme,10.0.0.16/24,,,,,,,"),
    ("ip leading zero", "SN17,sw17,C9300,acme,10.0.0.017,,,,,,,"),
    ("ipv6", "SN18,sw18,C9300,acme,2001:DB8:0::1,,,,,,,"),
    ("mac dashes", "SN19,sw19,C9300,acme,,AA-BB-CC-DD-EE-19,,,,,,"),
    ("mac bare", "SN20,sw20,C9300,acme,,AABBCCDDEE20,,,,,,"),
    ("mac mixed", "SN21,sw21,C9300,acme,,aa:bb-cc:dd:ee:21,,,,,,"),
    ("mac short", "SN22,sw22,C9300,acme,,aa:bb:cc:dd:ee,,,,,,"),
    ("status word", "SN23,sw23,C9300,acme,,,Yes,,,,,"),
    ("bad status", "SN24,sw24,C9300,acme,,,maybe,,,,,"),
    ("long serial", "S" * 256 + ",sw25,C9300,acme,,,,,,,,"),
    ("longest serial", "S" * 255 + ",sw26,C9300,acme,,,,,,,,"),
    ("long name", "SN27," + "n" * 256 + ",C9300,acme,,,,,,,,"),
    ("longest name", "SN28," + "n" * 255 + ",C9300,acme,,,,,,,,"),
    ("no name", "SN29,,C9300,acme,,,,,,,,"),
    ("duplicate", "SN1,sw1-again,C9300,acme,,,,,,,,"),
    ("extra only in one", "SN30,sw30,C9300,acme,,,,,,,,only"),
    ("crlf", "SN31,sw31,C9300,acme,,,,,,,,\r"),
    ("json specials", 'SN32,"{""a"": [1]}",C9300,acme,,,,,/\\/,</script>,,'),
)


def _with_action(line: str, word: str) -> str:
    """``line`` with an action cell at its end (before a CR-LF's CR)."""
    if not line:
        return line
    cr = "\r" if line.endswith("\r") else ""
    return f"{line.removesuffix(cr)},{word}{cr}"


def _edges_file(path: Path, lines: list[str], header: str = HEADER) -> None:
    path.write_bytes(("\n".join([header, *lines]) + "\n").encode("utf-8"))


@pytest.mark.parametrize("skipped", [False, True], ids=["all-fields", "fields-skipped"])
@pytest.mark.parametrize("mode", ["snapshot", "delta"])
@pytest.mark.parametrize("clear", [False, True])
def test_every_edge_reads_alike(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    block_bytes: int,
    *,
    mode: str,
    clear: bool,
    skipped: bool,
) -> None:
    lines = [line for _what, line in EDGES]
    header = HEADER
    if mode == "delta":
        header += ",action"
        words = ["upsert", "DELETE", "", "Upsert", "remove", "delete"]
        lines = [_with_action(x, words[i % len(words)]) for i, x in enumerate(lines)]
    path = tmp_path / "edges.csv"
    _edges_file(path, lines, header)
    options = ReadOptions(
        source="s",
        label="edges.csv",
        mode=mode,  # type: ignore[arg-type]
        clear_empty=clear,
        required=("serial_number", "name"),
        # fields the policy ignores are not read (their bad values are no reject)
        skipped=frozenset({"mac_address", "status"} if skipped else ()),
    )
    taken = assert_alike(three_ways(monkeypatch, path, "utf-8", options))
    assert taken > 0


@pytest.mark.parametrize(
    "odd",
    [
        'SN40,"two\nlines",C9300,acme,,,,,,,,',  # a quoted line break: rows span lines
        "SN41,sw41\r,C9300,acme,,,,,,,,",  # a lone carriage return ends a line for csv
        'SN42,a"b,"c\nd",C9300,acme,,,,,,,',  # even quotes, yet a field runs on
        'SN43,"never closed,C9300,acme,,,,,,,,',  # to the end of the file
        "SN44," + "x" * 140_000 + ",C9300,acme,,,,,,,,",  # over csv's field limit
    ],
)
def test_the_row_path_takes_the_rest_of_a_file_it_must_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, odd: str
) -> None:
    lines = [line for _what, line in EDGES[:5]]
    path = tmp_path / "odd.csv"
    _edges_file(path, [*lines, odd, *lines])
    options = ReadOptions(source="s", label="odd.csv")
    assert_alike(three_ways(monkeypatch, path, "utf-8", options))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_order_mark_and_leading_blank_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, bom: bytes
) -> None:
    path = tmp_path / "bom.csv"
    body = "\n\n  \n" + HEADER + "\n" + "\n".join(line for _w, line in EDGES[:3]) + "\n"
    path.write_bytes(bom + body.encode())
    options = ReadOptions(source="s", label="bom.csv")
    assert_alike(three_ways(monkeypatch, path, encoding, options))


def test_duplicate_extra_headers_take_the_row_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dup.csv"
    _edges_file(path, ["SN1,sw1,b,a", "SN2,sw2,,z"], "serial,name,notes,notes")
    found = three_ways(monkeypatch, path, "utf-8", ReadOptions(source="s", label="dup.csv"))
    assert assert_alike(found) == 0


# -- generated files -------------------------------------------------------------------------


@settings(max_examples=examples(ci=60, nightly=10_000))
@given(case=csv_files(), tiny=st.booleans())
def test_hostile_files_read_alike(
    case: tuple[bytes, str, list[list[str]], list[int]],
    tiny: bool,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data, encoding, _rows, _starts = case
    path = tmp_path_factory.mktemp("csv") / "po.csv"
    path.write_bytes(data)
    scan = scan_file(lambda: path.open("rb"), encoding=encoding, legacy_encoding="cp1252")
    with pytest.MonkeyPatch.context() as patch:
        if tiny:
            patch.setattr(columnar, "BLOCK_BYTES", 61)
        assert_alike(three_ways(patch, path, scan.encoding, ReadOptions(source="f", label="po")))


_PLAIN_CELLS = st.sampled_from(
    [
        "",
        " ",
        "sw-1",
        " padded ",
        'say "hi"',
        "a,b",
        "back\\slash",
        "10.1.2.3",
        "010.1.2.3",
        "::1",
        "aa:bb:cc:dd:ee:ff",
        "AA-BB-CC-DD-EE-FF",
        "aabb.ccdd.eeff",
        "AABBCCDDEEFF",
        "aa:bb:cc:dd:ee",
        "up",
        "No",
        "maybe",
        "upsert",
        "Delete",
        "x" * 256,
        "é",
        "C9300-48P",
    ]
)


@st.composite
def plain_files(draw: st.DrawFn) -> tuple[str, str]:
    """``(text, mode)``: mostly simple rows whose values sit on the columnar checks' edges
    (``delta`` mode only with an action column)."""
    header = ["serial", "name", "model", "tenant", "ip", "mac", "status", "site", "notes"]
    mode = "snapshot"
    if draw(st.booleans()):
        header.append("action")
        mode = draw(st.sampled_from(["snapshot", "delta"]))
    rows = draw(
        st.lists(st.lists(_PLAIN_CELLS, min_size=len(header), max_size=len(header)), max_size=25)
    )
    text = io.StringIO()
    writer = csv.writer(
        text,
        quoting=csv.QUOTE_ALL if draw(st.booleans()) else csv.QUOTE_MINIMAL,
        lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
    )
    writer.writerow(header)
    plain = ["SN-PLAIN", "sw", "C9300", "acme", "10.0.0.1", "aa:bb:cc:dd:ee:ff", "up", "fra", "n"]
    writer.writerow(plain + ["upsert"] * (len(header) - len(plain)))
    for number, row in enumerate(rows):
        # mostly good serials (some repeated), now and then an edge value instead
        serial = row[0] if number % 4 == 3 else f"SN{number % 7}"
        writer.writerow([serial, *row[1:]])
    return text.getvalue(), mode


@settings(max_examples=examples(ci=60, nightly=10_000))
@given(case=plain_files(), clear=st.booleans())
def test_plain_files_read_alike(
    case: tuple[str, str], clear: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    text, mode = case
    path = tmp_path_factory.mktemp("csv") / "plain.csv"
    path.write_bytes(text.encode("utf-8"))
    options = ReadOptions(source="p", label="plain", mode=mode, clear_empty=clear)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columnar, "BLOCK_BYTES", 211)
        assert assert_alike(three_ways(patch, path, "utf-8", options)) >= 1


def test_the_benchmark_file_reads_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.datagen import Scenario, write_csv

    path = tmp_path / "next.csv"
    write_csv(path, Scenario.build(3000, 7).next_rows())
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 50_000)
    found = three_ways(monkeypatch, path, "utf-8", ReadOptions(source="b", label="next.csv"))
    assert assert_alike(found) == found["columnar"][1][0] > 2900


# -- into the store --------------------------------------------------------------------------

_BASE = [
    "SN1,sw1,C9300,acme,10.0.0.1,aa:bb:cc:dd:ee:01,up,fra,d1,17.1,n1,x1",
    "x-a,sw2,C9300,acme,10.0.0.2,,,,,,,",  # "X-A" after the case rule
    "X-,sw3,C9300,acme,,,,,,,,",  # nothing left after the prefix rule: a reject
    "SN4,sw4,C9300,acme,,,,,,,,",
    "SN4,sw4-again,C9300,acme,,,,,,,,",  # a collision: two rows of one serial
    "SN5,Zürich,C9300,acme,,,,,,,,",  # the row path, between two blocks
    "SN6,sw6,C9300,acme,10.0.0.256,,,,,,,",  # a bad value: a reject
    *[f"SN{n},sw{n},C9300,acme,10.0.{n}.1,,down,,,,," for n in range(7, 40)],
]
_NEXT = [
    "SN0,new,C9300,acme,,,,,,,,",  # a line above all others: every other row moves
    *[line.replace("d1,", "d2,") for line in _BASE if not line.startswith("SN9,")],
]


def _stored(store: Any, connector: str, inbox: Path) -> tuple[Any, ...]:
    """The connector's stored rows and rejects (places without the inbox's path)."""
    import sqlalchemy as sa

    from syncd.store.tables import REJECT, SOURCE_RECORD

    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                SOURCE_RECORD.c.serial_number,
                SOURCE_RECORD.c.seq,
                SOURCE_RECORD.c.origin,
                SOURCE_RECORD.c.content_hash,
                SOURCE_RECORD.c.payload,
                SOURCE_RECORD.c.wanted,
                SOURCE_RECORD.c.action,
            )
            .where(SOURCE_RECORD.c.connector == connector)
            .order_by(SOURCE_RECORD.c.serial_number, SOURCE_RECORD.c.seq)
        ).all()
        rejects = conn.execute(
            sa.select(REJECT.c.location, REJECT.c.reason, REJECT.c.serial_number)
            .where(REJECT.c.source == connector)
            .order_by(REJECT.c.id)
        ).all()
    here = str(inbox)
    return (
        [(r[0], r[1], r[2].replace(here, ""), *r[3:]) for r in rows],
        [(r[0].replace(here, ""), *r[1:]) for r in rejects],
    )


@pytest.mark.parametrize("mode", ["snapshot", "delta"])
def test_an_ingest_stores_alike_either_way(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The same two files, ingested by the columnar path (tiny blocks) and by rows into
    one store under two connector names, under serial rules that change serials and
    empty one: the same stored rows (hashes, payloads, places), rejects and counts."""
    from datetime import UTC, datetime

    from syncd.engine import SerialRules
    from syncd.service import ingest
    from syncd.store import Store

    rules = SerialRules(case="upper", strip_prefixes=("X-",))
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 150)
    header = HEADER + (",action" if mode == "delta" else "")
    reports: dict[str, list[Any]] = {}
    with Store.open(db_url) as store:
        for way in ("columnar", "full rows"):
            _way(monkeypatch, way)
            name = way.replace(" ", "_")
            inbox = tmp_path / name
            inbox.mkdir()
            config = CsvDropConfig(inbox=inbox, stable_seconds=0, mode=mode)
            for text in (_BASE, _NEXT):
                lines = [_with_action(x, "upsert") for x in text] if mode == "delta" else text
                _edges_file(inbox / "po.csv", lines, header)
                report = ingest(
                    store,
                    [CsvDropConnector(name, config)],
                    serial_rules=rules,
                    run_id=None,
                    now=datetime.now(UTC),
                )
                reports.setdefault(way, []).extend(
                    (b.accepted, b.records, b.rejects) for b in report.batches
                )
        by_columns = _stored(store, "columnar", tmp_path / "columnar")
        by_rows = _stored(store, "full_rows", tmp_path / "full_rows")
    assert reports["columnar"] == reports["full rows"]
    assert by_columns == by_rows
    serials = {row[0] for row in by_columns[0]}
    assert {"X-A", "SN4", "SN0"} <= serials
    assert "SN9" not in serials or mode == "delta"
