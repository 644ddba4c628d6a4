"""The CSV drop inbox on a real filesystem: which files are taken, claims, moves, reports,
crash recovery and processes racing for one file (real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.base import MarkedBatch
from connectors.csv_drop import CsvDropConfig, CsvDropConnector, CsvFileBatch
from connectors.csv_drop.inbox import LOCK_NAME
from connectors.netbox.state import MemoryState
from syncd.errors import ConfigError
from syncd.records import DeviceRecord

HEADER = "serial,name,type,organization\n"
NOW = time.time()


def drop(inbox: Path, name: str, *serials: str, age: float = 3600.0) -> Path:
    """A complete file, last modified ``age`` seconds ago."""
    path = inbox / name
    path.write_text(HEADER + "".join(f"{s},host-{s},C9200,acme\n" for s in serials))
    past = NOW - age
    os.utime(path, (past, past))
    return path


def connector(inbox: Path, **options: object) -> CsvDropConnector:
    config = CsvDropConfig.model_validate({"inbox": inbox, **options})
    return CsvDropConnector("procurement", config)


def take_all(c: CsvDropConnector) -> list[CsvFileBatch]:
    """Fetch, read and commit every batch; the batches in the order they came."""
    out = []
    for batch in c.fetch():
        assert isinstance(batch, CsvFileBatch)
        list(batch.items())
        batch.commit()
        out.append(batch)
    return out


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


# -- which files are taken -------------------------------------------------------------------


def test_temp_names_and_foreign_files_are_left_alone(inbox: Path) -> None:
    for name in (
        ".upload.csv",
        "po.csv.tmp",
        "po.csv.part",
        "po.csv.partial",
        "~$po.csv",
        "po.csv.swp",
        "po.csv.crdownload",
        "notes.pdf",
    ):
        drop(inbox, name, "X-1")
    drop(inbox, "po.csv", "GOOD-1")
    batches = take_all(connector(inbox))
    assert [b.origin for b in batches] == [str(inbox / "po.csv")]
    assert "po.csv.part" in names(inbox)
    assert ".upload.csv" in names(inbox)
    assert names(inbox / "processed") == ["po.csv"]


def test_a_file_modified_within_stable_seconds_waits(inbox: Path) -> None:
    path = drop(inbox, "po.csv", "A-1", age=0)
    assert list(connector(inbox, stable_seconds=600).fetch()) == []
    assert path.exists(), "a file still being written stays where it is"
    past = time.time() - 601
    os.utime(path, (past, past))
    # A fresh process has no earlier listing: an old enough mtime is enough.
    assert [b.origin for b in take_all(connector(inbox, stable_seconds=600))] == [str(path)]


def test_a_file_that_changed_since_the_last_listing_waits_one_more_round(inbox: Path) -> None:
    # Only a long-running process has a previous listing: it also compares size and mtime.
    path = drop(inbox, "po.csv", "A-1", age=0)
    c = connector(inbox, stable_seconds=600)
    assert list(c.fetch()) == []
    with path.open("a") as out:
        out.write("A-2,host,C9200,acme\n")
    past = time.time() - 3600
    os.utime(path, (past, past))
    assert list(c.fetch()) == [], "size changed since the previous listing"
    (batch,) = take_all(c)
    assert batch.verdict.records == 2


def test_oldest_file_first_then_by_name(inbox: Path) -> None:
    drop(inbox, "c.csv", "C-1", age=300)
    drop(inbox, "a.csv", "A-1", age=100)
    drop(inbox, "b.csv", "B-1", age=300)
    batches = take_all(connector(inbox))
    assert [Path(b.origin).name for b in batches] == ["b.csv", "c.csv", "a.csv"]


def test_missing_inbox_is_a_config_error(tmp_path: Path) -> None:
    c = connector(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="is not a directory"):
        list(c.fetch())


def test_a_folder_on_another_filesystem_is_a_config_error(inbox: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == inbox.stat().st_dev:
        pytest.skip("no second filesystem to test with")
    c = connector(inbox, failed_dir=shm / f"syncd-test-{os.getpid()}")
    try:
        with pytest.raises(ConfigError, match="same filesystem"):
            list(c.fetch())
    finally:
        (shm / f"syncd-test-{os.getpid()}").rmdir()


# -- setting files down ----------------------------------------------------------------------


def test_commit_moves_the_file_and_remembers_its_checksum(inbox: Path) -> None:
    path = drop(inbox, "po.csv", "A-1", "A-2")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (batch,) = take_all(connector(inbox))
    assert batch.path == inbox / "processed" / "po.csv"
    assert names(inbox / "processed") == ["po.csv"], "no report when no row was rejected"
    assert names(inbox / "processing") == []
    ledger = json.loads((inbox / ".syncd-ingested.json").read_text())
    entry = ledger["last"]
    assert (entry["sha256"], entry["file"], entry["records"]) == (digest, "po.csv", 2)
    assert entry["stored_as"] == str(inbox / "processed" / "po.csv")


def test_the_last_content_again_is_not_applied_twice(inbox: Path) -> None:
    first = drop(inbox, "monday.csv", "A-1")
    content = first.read_bytes()
    c = connector(inbox)
    take_all(c)
    again = inbox / "tuesday.csv"
    again.write_bytes(content)
    os.utime(again, (time.time() - 60, time.time() - 60))
    assert list(c.fetch()) == []
    assert names(inbox / "processed") == ["monday.csv", "tuesday.csv", "tuesday.csv.duplicate.txt"]
    note = (inbox / "processed" / "tuesday.csv.duplicate.txt").read_text()
    assert "same content" in note
    assert "as the last file accepted,\nmonday.csv" in note


def test_an_older_content_sent_again_is_read_again(inbox: Path) -> None:
    # Only the last accepted content is a duplicate: A, B, A makes A the snapshot again.
    content = drop(inbox, "a.csv", "A-1", "A-2", age=300).read_bytes()
    drop(inbox, "b.csv", "A-1", age=200)
    c = connector(inbox)
    take_all(c)
    again = inbox / "a-again.csv"
    again.write_bytes(content)
    os.utime(again, (time.time() - 60, time.time() - 60))
    (batch,) = take_all(c)
    assert (Path(batch.origin).name, batch.verdict.records) == ("a-again.csv", 2)
    assert names(inbox / "processed") == ["a-again.csv", "a.csv", "b.csv"]
    ledger = json.loads((inbox / ".syncd-ingested.json").read_text())["last"]
    assert (ledger["file"], ledger["sha256"]) == ("a-again.csv", batch.checksum)


def test_with_a_state_the_last_content_is_a_mark_to_store_with_the_batch(inbox: Path) -> None:
    # A connector given a state (syncd's store) never writes the inbox's JSON ledger:
    # each accepted batch carries the new state, for the store to save with the batch.
    state = MemoryState()
    config = CsvDropConfig.model_validate({"inbox": inbox})
    c = CsvDropConnector("procurement", config, state=state)
    content = drop(inbox, "monday.csv", "A-1").read_bytes()
    (batch,) = c.fetch()
    assert isinstance(batch, MarkedBatch)
    assert batch.mark is None, "not read yet"
    list(batch.items())
    mark = batch.mark
    batch.commit()

    assert mark is not None
    assert (mark["last"]["sha256"], mark["last"]["file"]) == (batch.checksum, "monday.csv")
    assert state.load() == {}, "saved by whoever stores the batch, not by commit()"
    assert not (inbox / ".syncd-ingested.json").exists()
    state.save(mark)  # what the ingest step does, in the batch's transaction
    again = inbox / "tuesday.csv"
    again.write_bytes(content)
    os.utime(again, (NOW - 60, NOW - 60))
    assert list(c.fetch()) == []
    assert "tuesday.csv.duplicate.txt" in names(inbox / "processed")


def test_same_name_again_is_kept_beside_the_first_with_a_timestamp(inbox: Path) -> None:
    c = connector(inbox)
    drop(inbox, "po.csv", "A-1")
    take_all(c)
    drop(inbox, "po.csv", "B-1")
    take_all(c)
    kept = names(inbox / "processed")
    assert kept[-1] == "po.csv"
    assert len(kept) == 2
    assert kept[0].startswith("po.")
    assert kept[0].endswith("Z.csv")
    assert "A-1" in (inbox / "processed" / "po.csv").read_text()
    assert "B-1" in (inbox / "processed" / kept[0]).read_text()


def test_fail_moves_the_file_with_an_error_report(inbox: Path) -> None:
    drop(inbox, "po.csv", "A-1")
    (batch,) = connector(inbox).fetch()
    list(batch.items())
    batch.fail("the store was unreachable")
    assert batch.path == inbox / "failed" / "po.csv"
    assert names(inbox / "failed") == ["po.csv", "po.csv.error.txt"]
    error = (inbox / "failed" / "po.csv.error.txt").read_text()
    assert "failed: the store was unreachable" in error
    assert "rows: 1 records, 0 rejected" in error


def test_failed_content_is_not_remembered(inbox: Path) -> None:
    content = drop(inbox, "po.csv", "A-1").read_bytes()
    c = connector(inbox)
    (batch,) = c.fetch()
    batch.fail("refused")
    again = inbox / "po-fixed.csv"
    again.write_bytes(content)
    os.utime(again, (time.time() - 60, time.time() - 60))
    assert [Path(b.origin).name for b in take_all(c)] == ["po-fixed.csv"]


def test_a_released_batch_is_offered_again(inbox: Path) -> None:
    drop(inbox, "po.csv", "A-1")
    c = connector(inbox)
    (batch,) = c.fetch()
    batch.release()
    (again,) = take_all(c)
    assert again.recovered
    assert again.origin == str(inbox / "po.csv")


def test_batch_misuse_is_refused(inbox: Path) -> None:
    drop(inbox, "po.csv", "A-1")
    (batch,) = connector(inbox).fetch()
    assert not batch.verdict.accepted, "an unread batch never looks accepted"
    with pytest.raises(RuntimeError, match="cannot be committed"):
        batch.commit()
    list(batch.items())
    with pytest.raises(RuntimeError, match="once"):
        batch.items()
    batch.commit()
    batch.commit()  # idempotent
    assert names(inbox / "processed") == ["po.csv"]


def test_a_rejected_file_cannot_be_committed(inbox: Path) -> None:
    (inbox / "bad.csv").write_text("name,type\nx,y\n")
    os.utime(inbox / "bad.csv", (time.time() - 60, time.time() - 60))
    (batch,) = connector(inbox).fetch()
    list(batch.items())
    with pytest.raises(RuntimeError, match="no column for required field serial_number"):
        batch.commit()
    assert (inbox / "bad.csv").exists() is False
    assert batch.path.parent.parent == inbox / "processing", "still claimed, not lost"


def test_a_note_that_cannot_be_written_does_not_keep_the_file_from_moving(inbox: Path) -> None:
    drop(inbox, "po.csv", "A-1")
    (batch,) = connector(inbox).fetch()
    list(batch.items())
    (inbox / "failed" / ".po.csv.error.txt.tmp").mkdir()  # the note's temporary name is taken
    with capture_logs() as logs:
        batch.fail("refused")
    assert batch.path == inbox / "failed" / "po.csv"
    assert names(inbox / "failed") == [".po.csv.error.txt.tmp", "po.csv"]
    assert names(inbox / "processing") == [], "the claim is dropped all the same"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "cannot write the note beside a file"
    ]


def test_a_file_that_cannot_be_set_aside_stays_for_the_next_fetch(inbox: Path) -> None:
    drop(inbox, "po.csv", "A-1")
    c = connector(inbox)
    (batch,) = c.fetch()
    list(batch.items())
    (inbox / "failed").rmdir()
    (inbox / "failed").write_text("a file where the folder should be")
    batch.fail("refused")  # no exception: fail() runs on error paths, it must not mask them
    (inbox / "failed").unlink()
    (again,) = c.fetch()
    assert (again.recovered, again.origin) == (True, str(inbox / "po.csv"))
    again.release()


def test_a_ledger_that_cannot_be_written_leaves_the_file_to_be_read_again(inbox: Path) -> None:
    # The ledger is written before the file moves: it must never lag behind the store.
    drop(inbox, "po.csv", "A-1")
    c = connector(inbox)
    (batch,) = c.fetch()
    list(batch.items())
    blocker = inbox / "..syncd-ingested.json.tmp"  # the ledger's temporary name is taken
    blocker.mkdir()
    with pytest.raises(IsADirectoryError):
        batch.commit()
    assert names(inbox / "processed") == []
    blocker.rmdir()
    (again,) = take_all(c)
    assert (again.recovered, again.verdict.records) == (True, 1)
    assert names(inbox / "processed") == ["po.csv"]


def test_a_file_committed_but_not_moved_is_a_duplicate_next_time(inbox: Path) -> None:
    drop(inbox, "po.csv", "A-1")
    c = connector(inbox)
    (batch,) = c.fetch()
    list(batch.items())
    (inbox / "processed").rmdir()
    (inbox / "processed").write_text("a file where the folder should be")
    with pytest.raises(FileNotFoundError):  # the folder opened by the fetch is gone
        batch.commit()
    (inbox / "processed").unlink()
    assert list(c.fetch()) == [], "the store holds this content already"
    assert names(inbox / "processed") == ["po.csv", "po.csv.duplicate.txt"]


# -- a file still being written ------------------------------------------------------------------


def test_a_file_that_grows_while_it_is_read_goes_back_to_the_inbox(inbox: Path) -> None:
    first = drop(inbox, "po.csv", "G-1").stat().st_size
    c = connector(inbox, stable_seconds=600)
    (batch,) = c.fetch()
    with batch.path.open("a") as writer:  # the writer, still at work on the claimed file
        writer.write("G-2,host-G-2,C9200,acme\n")
    list(batch.items())
    verdict = batch.verdict
    assert not verdict.accepted
    assert verdict.reason == (
        f"still being written: its size went from {first} to {batch.path.stat().st_size} "
        "bytes while it was read; it goes back to the inbox and is taken again once complete"
    )
    batch.fail(verdict.reason)  # what ingest does with a batch that is not accepted
    assert names(inbox / "failed") == []
    assert names(inbox / "processing") == []
    assert "G-2" in (inbox / "po.csv").read_text()
    assert list(c.fetch()) == [], "just modified: it waits stable_seconds again"
    past = time.time() - 601
    os.utime(inbox / "po.csv", (past, past))
    (again,) = take_all(connector(inbox, stable_seconds=600))  # a later run
    assert (again.verdict.accepted, again.verdict.records) == (True, 2)


def test_a_file_with_an_old_mtime_is_taken_at_the_first_listing(inbox: Path) -> None:
    # What the docs warn about: cp -p keeps the source's mtime, so nothing is waited for.
    drop(inbox, "copied.csv", "P-1", age=3600)
    (batch,) = take_all(connector(inbox, stable_seconds=600))
    assert batch.verdict.records == 1


def test_the_json_ledger_never_writes_through_a_link_planted_in_the_inbox(
    inbox: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (inbox / "..syncd-ingested.json.tmp").symlink_to(victim)
    (inbox / "..syncd-ingested.json.lock").symlink_to(tmp_path / "created-through-the-link")
    drop(inbox, "po.csv", "A-1")
    c = connector(inbox)
    (batch,) = c.fetch()
    list(batch.items())
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        batch.commit()  # the lock is a link: refused, the file stays to be read again
    (inbox / "..syncd-ingested.json.lock").unlink()

    (again,) = take_all(c)

    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "created-through-the-link").exists()
    assert json.loads((inbox / ".syncd-ingested.json").read_text())["last"]["file"] == "po.csv"
    assert not (inbox / "..syncd-ingested.json.tmp").exists()
    assert again.recovered


def test_corrupt_ledger_is_set_aside_not_fatal(inbox: Path) -> None:
    (inbox / ".syncd-ingested.json").write_text("{not json")
    drop(inbox, "po.csv", "A-1")
    (batch,) = take_all(connector(inbox))
    assert batch.verdict.accepted
    assert (inbox / ".syncd-ingested.json.corrupt").read_text() == "{not json"
    assert json.loads((inbox / ".syncd-ingested.json").read_text())["last"]["file"] == "po.csv"


# -- claims, crashes and races ----------------------------------------------------------------

CHILD = """
import os, sys
from pathlib import Path
from connectors.csv_drop import CsvDropConfig, CsvDropConnector
inbox, behaviour = Path(sys.argv[1]), sys.argv[2]
c = CsvDropConnector("procurement", CsvDropConfig(inbox=inbox, stable_seconds=0))
def say(*words):
    print("@@", *words, flush=True)
if behaviour == "race":
    say("ready")
    sys.stdin.readline()
    for batch in c.fetch():
        list(batch.items())
        batch.commit()
        say("took", Path(batch.origin).name)
    sys.exit(0)
batch = next(iter(c.fetch()))
items = batch.items()
next(items)
say("claimed", batch.path)
if behaviour == "hold":
    sys.stdin.readline()
os._exit(3)  # die without committing: the kernel drops the claim's lock
"""


def child(inbox: Path, behaviour: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(inbox), behaviour],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def said(proc: subprocess.Popen[str]) -> list[str]:
    """The next protocol line the child printed (log lines skipped)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("@@ "):
            return line.split()[1:]
    raise AssertionError(f"child ended without a word (exit {proc.wait(timeout=30)})")


def test_a_file_left_by_a_crashed_process_is_recovered_first(inbox: Path) -> None:
    drop(inbox, "crashed.csv", "C-1", "C-2", age=60)
    with child(inbox, "crash") as proc:
        word, claimed = said(proc)
        assert proc.wait(timeout=30) == 3
    assert word == "claimed"
    assert Path(claimed).parent.parent == inbox / "processing"
    drop(inbox, "older-but-new.csv", "N-1", age=7200)
    batches = take_all(connector(inbox))
    assert [(Path(b.origin).name, b.recovered) for b in batches] == [
        ("crashed.csv", True),
        ("older-but-new.csv", False),
    ]
    assert batches[0].verdict.records == 2, "the whole file is read again"
    assert names(inbox / "processing") == []
    assert names(inbox / "processed") == ["crashed.csv", "older-but-new.csv"]


def test_a_claim_held_by_a_live_process_is_not_taken_over(inbox: Path) -> None:
    drop(inbox, "po.csv", "H-1", age=60)
    with child(inbox, "hold") as proc:
        assert said(proc)[0] == "claimed"
        c = connector(inbox)
        assert list(c.fetch()) == [], "the other process is still working on it"
        assert proc.stdin is not None
        proc.stdin.write("done\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 3
    (batch,) = take_all(c)
    assert batch.recovered


def test_processes_racing_for_files_take_each_exactly_once(inbox: Path) -> None:
    for i in range(30):
        drop(inbox, f"po-{i:02d}.csv", f"R-{i}", age=60)
    taken: list[str] = []
    with child(inbox, "race") as one, child(inbox, "race") as two, child(inbox, "race") as three:
        procs = (one, two, three)
        for proc in procs:
            assert said(proc) == ["ready"]
        for proc in procs:  # start them together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            taken += [line.split()[2] for line in out.splitlines() if line.startswith("@@ took")]
    assert sorted(taken) == [f"po-{i:02d}.csv" for i in range(30)], "each file exactly once"
    assert names(inbox / "processed") == sorted(taken)
    ledger = json.loads((inbox / ".syncd-ingested.json").read_text())["last"]
    assert ledger["file"] in taken, "the ledger names a file one of them committed"
    content = (inbox / "processed" / ledger["file"]).read_bytes()
    assert ledger["sha256"] == hashlib.sha256(content).hexdigest(), "written whole, not mixed"


def test_two_connectors_in_one_process_cannot_claim_one_file(inbox: Path) -> None:
    path = drop(inbox, "po.csv", "A-1")
    first, second = connector(inbox), connector(inbox)
    first.inbox.prepare()
    claim = first.inbox.claim(path)
    assert claim is not None
    assert second.inbox.claim(path) is None
    assert list(second.fetch()) == [], "a live claim is not recovered by the other"
    claim.lock.release()


def test_a_bare_file_in_processing_is_picked_up(inbox: Path) -> None:
    (inbox / "processing").mkdir()
    drop(inbox / "processing", "moved-by-hand.csv", "B-1")
    (batch,) = take_all(connector(inbox))
    assert batch.recovered
    assert names(inbox / "processed") == ["moved-by-hand.csv"]


def test_an_old_empty_claim_folder_is_removed(inbox: Path) -> None:
    stale = inbox / "processing" / "20200101T000000.000000Z-1-abcdef"
    stale.mkdir(parents=True)
    (stale / LOCK_NAME).touch()
    past = time.time() - 3600
    os.utime(stale, (past, past))
    assert list(connector(inbox).fetch()) == []
    assert names(inbox / "processing") == []


def test_items_stream_records_while_the_file_is_claimed(inbox: Path) -> None:
    drop(inbox, "po.csv", "S-1", "S-2")
    (batch,) = connector(inbox).fetch()
    items = batch.items()
    first = next(items)
    assert isinstance(first, DeviceRecord)
    assert first.serial_number == "S-1"
    assert not (inbox / "po.csv").exists()
    assert batch.path.name == "po.csv"
    assert batch.path.parent.parent == inbox / "processing"
    batch.release()


# -- the inbox's own folders, and entries that are not regular files ----------------------------

OWN_FOLDERS = [
    ("processing", "processing_dir"),
    ("processed", "processed_dir"),
    ("failed", "failed_dir"),
]


@pytest.mark.parametrize(("folder", "option"), OWN_FOLDERS)
@pytest.mark.parametrize("what", ["symlink", "file"])
def test_an_own_folder_that_is_not_a_real_directory_refuses_to_start(
    inbox: Path, tmp_path: Path, folder: str, option: str, what: str
) -> None:
    # Regression: mkdir(exist_ok=True) followed a symlink, so anyone who can write into
    # the inbox could send syncd's moves and notes to any folder syncd can write.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if what == "symlink":
        (inbox / folder).symlink_to(elsewhere)
    else:
        (inbox / folder).write_text("not a folder")
    path = drop(inbox, "po.csv", "A-1")
    with pytest.raises(ConfigError) as raised:
        list(connector(inbox).fetch())
    described = "is a symbolic link" if what == "symlink" else "is not a directory"
    assert str(raised.value).count(f"{option}: {inbox / folder} {described}") == 1
    assert path.exists(), "nothing was claimed"
    assert names(elsewhere) == []


def test_a_symlink_on_the_way_to_a_folder_inside_the_inbox_refuses_to_start(
    inbox: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox / "archive").symlink_to(elsewhere)
    drop(inbox, "po.csv", "A-1")
    c = connector(inbox, processed_dir=inbox / "archive" / "done")
    with pytest.raises(ConfigError, match=f"processed_dir: {inbox / 'archive'} is a symbolic link"):
        list(c.fetch())
    assert names(elsewhere) == []


def test_a_folder_replaced_by_a_symlink_after_start_is_not_followed(
    inbox: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    drop(inbox, "good.csv", "A-1", age=300)
    (inbox / "bad.csv").write_text("name,type\nx,y\n")  # no serial column: refused
    os.utime(inbox / "bad.csv", (NOW - 200, NOW - 200))
    c = connector(inbox)
    good, bad = c.fetch()
    for batch in (good, bad):
        list(batch.items())
    # Someone with write access to the inbox swaps both folders for links.
    for folder in ("processed", "failed"):
        (inbox / folder).rename(inbox / f"{folder}-real")
        (inbox / folder).symlink_to(elsewhere)

    good.commit()
    bad.fail(bad.verdict.reason)

    assert names(elsewhere) == [], "no file and no note went through the links"
    assert names(inbox / "processed-real") == ["good.csv"]
    assert names(inbox / "failed-real") == ["bad.csv", "bad.csv.error.txt"]
    with pytest.raises(ConfigError, match=r"processed_dir: .* is a symbolic link"):
        list(c.fetch())


def test_a_processing_folder_swapped_while_a_file_is_claimed_is_not_read_through(
    inbox: Path, tmp_path: Path
) -> None:
    drop(inbox, "po.csv", "REAL-1")
    (batch,) = connector(inbox).fetch()
    claim_id = batch.path.parent.name
    planted = tmp_path / "planted"
    (planted / claim_id).mkdir(parents=True)
    drop(planted / claim_id, "po.csv", "PLANTED-1")
    (inbox / "processing").rename(inbox / "processing-real")
    (inbox / "processing").symlink_to(planted)

    records = [i.serial_number for i in batch.items() if isinstance(i, DeviceRecord)]
    batch.commit()

    assert records == ["REAL-1"]
    assert "REAL-1" in (inbox / "processed" / "po.csv").read_text()
    assert names(planted / claim_id) == ["po.csv"], "the planted claim folder was not touched"


def test_notes_never_follow_a_symlink_planted_in_their_place(inbox: Path, tmp_path: Path) -> None:
    victims = [tmp_path / "victim-1.txt", tmp_path / "victim-2.txt"]
    for victim in victims:
        victim.write_text("precious\n")
    (inbox / "failed").mkdir()
    (inbox / "failed" / "po.csv.error.txt").symlink_to(victims[0])
    (inbox / "failed" / ".po.csv.error.txt.tmp").symlink_to(victims[1])
    drop(inbox, "po.csv", "A-1")
    (batch,) = connector(inbox).fetch()
    list(batch.items())

    batch.fail("refused")

    assert [v.read_text() for v in victims] == ["precious\n", "precious\n"]
    note = inbox / "failed" / "po.csv.error.txt"
    assert not note.is_symlink()
    assert "failed: refused" in note.read_text()
    assert names(inbox / "failed") == ["po.csv", "po.csv.error.txt"]


def test_a_symlink_dropped_as_a_file_is_refused_unread_and_set_aside(
    inbox: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(HEADER + "SECRET-1,host,C9200,acme\n")
    (inbox / "po.csv").symlink_to(secret)
    c = connector(inbox)
    with capture_logs() as logs:
        (batch,) = c.fetch()
        assert list(batch.items()) == [], "nothing is read through the link"
        verdict = batch.verdict
        batch.fail(verdict.reason)  # what ingest does with a batch that is not accepted

    assert not verdict.accepted
    assert verdict.reason == f"not a regular file: a symbolic link to {secret}; set aside unread"
    assert names(inbox) == ["failed", "processed", "processing"], "not left in the inbox"
    assert (inbox / "failed" / "po.csv").is_symlink(), "the link itself was moved"
    assert (
        "failed: not a regular file: a symbolic link"
        in (inbox / "failed" / "po.csv.error.txt").read_text()
    )
    assert secret.read_text() == HEADER + "SECRET-1,host,C9200,acme\n"
    warned = [e for e in logs if e["event"] == "not a regular file, refused unread"]
    assert [(e["file"], e["log_level"]) for e in warned] == [("po.csv", "warning")]
    assert list(c.fetch()) == []


def test_a_fifo_or_a_socket_dropped_as_a_file_never_blocks_a_run(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(inbox / "pipe.csv")
    monkeypatch.chdir(inbox)  # a socket path must be short
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock.csv")
        drop(inbox, "po.csv", "A-1", age=10)
        batches = list(connector(inbox).fetch())
        reasons = {}
        for batch in batches:
            list(batch.items())
            if batch.verdict.accepted:
                batch.commit()
            else:
                reasons[Path(batch.origin).name] = batch.verdict.reason
                batch.fail(batch.verdict.reason)
    assert reasons == {
        "pipe.csv": "not a regular file: a named pipe (FIFO); set aside unread",
        "sock.csv": "not a regular file: a socket; set aside unread",
    }
    assert names(inbox / "processed") == ["po.csv"]
    assert names(inbox / "failed") == [
        "pipe.csv",
        "pipe.csv.error.txt",
        "sock.csv",
        "sock.csv.error.txt",
    ]


def test_a_symlink_left_in_processing_is_set_aside_too(inbox: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(HEADER + "SECRET-1,host,C9200,acme\n")
    (inbox / "processing").mkdir()
    (inbox / "processing" / "po.csv").symlink_to(secret)
    (batch,) = connector(inbox).fetch()
    assert list(batch.items()) == []
    batch.fail(batch.verdict.reason)
    assert batch.recovered
    assert names(inbox / "processing") == []
    assert (inbox / "failed" / "po.csv").is_symlink()
