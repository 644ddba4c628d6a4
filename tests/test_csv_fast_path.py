"""The CSV reader's fast path (``FastRow``) against its full path, over the whole corpus.

Every file of ``tests/data/csv`` is read twice, with the fast path and without, under
each option that changes how rows are read (snapshot and delta, ``empty_cells``,
``columns``): the records, the rejects, their line numbers and the verdict must be
identical. The fast path may only ever be a shortcut to the same answer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from connectors.csv_drop import CsvDropConfig, CsvDropConnector, reader
from connectors.csv_drop.fastrow import FastRow
from connectors.csv_drop.header import plan_header
from connectors.csv_drop.reader import ReadOptions, RowConverter

CORPUS = Path(__file__).parent / "data" / "csv"
FILES = sorted(p.name for p in CORPUS.iterdir() if p.name != "README.md")
OPTIONS: tuple[dict[str, Any], ...] = (
    {},
    {"empty_cells": "clear"},
    {"mode": "delta"},
    {"columns": {"Device": "name", "kunde": "organization", "NOTES": "ignore"}},
)


def _read(tmp: Path, name: str, options: dict[str, Any]) -> tuple[Any, ...]:
    inbox = tmp / "inbox"
    inbox.mkdir(parents=True)
    shutil.copyfile(CORPUS / name, inbox / name)
    config = CsvDropConfig.model_validate({"inbox": inbox, "stable_seconds": 0, **options})
    batches = list(CsvDropConnector("procurement", config).fetch())
    items = [(batch.origin, list(batch.items()), batch.verdict) for batch in batches]
    return tuple(
        (origin.replace(str(tmp), "TMP"), [_plain(i, tmp) for i in found], verdict)
        for origin, found, verdict in items
    )


def _plain(item: object, tmp: Path) -> str:
    return repr(item).replace(str(tmp), "TMP")


@pytest.mark.parametrize("name", FILES)
def test_fast_and_full_paths_read_the_corpus_alike(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number, options in enumerate(OPTIONS):
        fast = _read(tmp_path / f"fast{number}", name, options)
        monkeypatch.setattr(reader, "FAST_ROWS", False)
        full = _read(tmp_path / f"full{number}", name, options)
        monkeypatch.setattr(reader, "FAST_ROWS", True)
        assert fast == full, (name, options)


def test_the_fast_path_takes_the_plain_rows_and_leaves_the_rest() -> None:
    header = ["Serial", "Name", "Model", "Tenant", "IP", "MAC", "Status", "Description"]
    plan = plan_header(header, columns={}, required=("serial_number",))
    fast = FastRow(RowConverter(plan, ReadOptions(source="s", label="f.csv")))
    plain = ["SN1", "sw1", "C9300", "acme", "10.0.0.1", "00-1B-54-AA-01-02", "up", "a, b"]
    record = fast(plain, 7)
    assert record is not None
    assert (record.origin, record.mac_address, record.status) == (
        "f.csv:7",
        "00:1b:54:aa:01:02",
        True,
    )
    for odd in (
        [*plain[:7], "two\nlines"],  # a line break: the full path decides
        [*plain[:4], "10.0.0.300", *plain[5:]],  # a bad IP: a reject, with its reason
        [*plain[:6], "maybe", plain[7]],  # a bad status
        ["", *plain[1:]],  # no serial
        ["S" * 256, *plain[1:]],  # a serial too long
        plain[:7],  # a short row
    ):
        assert fast(odd, 7) is None


def test_a_duplicate_costs_a_hash_never_a_decode_or_a_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    content = (CORPUS / "bom_utf8.csv").read_bytes()
    (inbox / "monday.csv").write_bytes(content)
    config = CsvDropConfig.model_validate({"inbox": inbox, "stable_seconds": 0})
    connector = CsvDropConnector("procurement", config)
    for batch in connector.fetch():
        list(batch.items())
        batch.commit()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a duplicate must not be decoded or parsed")

    monkeypatch.setattr("connectors.csv_drop.connector.scan_file", refuse)
    monkeypatch.setattr("connectors.csv_drop.connector.read_blocks", refuse)
    (inbox / "tuesday.csv").write_bytes(content)
    assert list(connector.fetch()) == []
    assert (inbox / "processed" / "tuesday.csv.duplicate.txt").exists()
