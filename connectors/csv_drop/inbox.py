"""The inbox on disk: which files are ready, claiming them, recovering, setting them down.

Layout (the three folders default to inside the inbox, and must be on its filesystem,
because every move is a rename)::

    inbox/po-17.csv                          dropped, waiting until its mtime is old enough
    inbox/processing/<claim-id>/po-17.csv    claimed: being read (``.lock`` held meanwhile)
    inbox/processed/po-17.csv                committed (+ ``.report.txt`` if rows were rejected,
                                             or ``.duplicate.txt`` if the content was seen before)
    inbox/failed/po-17.csv                   rejected (+ ``.error.txt``: reason and bad rows)

A claim is an atomic ``rename`` of the dropped file into a fresh claim folder, so when
two processes race for one file exactly one rename succeeds. The claimant holds an
``flock`` on the claim's ``.lock`` until the file is committed or failed; the kernel
drops it when the process dies, which is how a claim left by a crash is told from one
in progress, and taken over.

**When a file counts as complete.** Its modification time must be at least
``stable_seconds`` old when the inbox is listed. That is all a one-shot process
(``syncd run --once``) can see; a long-running process that listed the inbox before
also waits while a file's size or mtime differs from that earlier listing. A file
that arrives with an old mtime (copied with ``cp -p``, extracted from an archive) is
therefore taken at the first listing that sees it, without waiting: safe when the
tool sets the time after writing, as those do, but not when a writer sets it first,
or pauses for longer than ``stable_seconds`` in the middle of writing. The reliable
way is for the writer to write under a name the inbox ignores (``.po-17.csv``,
``po-17.csv.tmp``, ``po-17.csv.part``) and rename it when done, which is atomic. As a
last guard, a file whose size or mtime changes between the start and the end of
reading is refused as still being written and returned to the inbox (see
``CsvFileBatch``).

**Names.** File names are bytes; one that is not UTF-8 (or holds control characters)
is shown everywhere people read it (origins, log lines, reports) through
``display_name``: ``po-\\xff.csv``. The file itself keeps its name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

import structlog

from connectors.csv_drop.config import CsvDropConfig
from connectors.csv_drop.controls import CONTROL
from syncd.errors import ConfigError, Problem

log = structlog.get_logger("connectors.csv_drop")

LOCK_NAME = ".lock"
SPOOL_NAME = ".rejects"
#: A claim folder without a file is removed once this old (the claim step takes microseconds).
STALE_EMPTY_CLAIM_SECONDS = 60.0


def display_name(path: Path | str) -> str:
    """``path`` as text that can always be encoded and printed: bytes that are not
    UTF-8 become ``\\xNN``, as do control characters (a newline or an escape sequence
    in a file name must not reach a log line or a terminal as such)."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if CONTROL.search(text) is None:
        return text
    return CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class ClaimLock:
    """An exclusive ``flock`` held on an open descriptor; released on ``release()`` or GC."""

    def __init__(self, fd: int) -> None:
        self._finalizer = weakref.finalize(self, os.close, fd)

    @classmethod
    def acquire(cls, path: Path) -> ClaimLock | None:
        """Lock ``path`` (created if missing) without waiting; ``None`` if it is held."""
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        except FileNotFoundError:  # the claim folder went away meanwhile
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        """Unlock (idempotent)."""
        self._finalizer()


@dataclass(eq=False)
class Claim:
    """A file this process holds: ``directory/name``, locked until set down."""

    directory: Path
    name: str
    lock: ClaimLock
    recovered: bool = False

    @property
    def path(self) -> Path:
        """Where the claimed file is now."""
        return self.directory / self.name

    @property
    def spool(self) -> Path:
        """Where the rejects found while reading are written, for the report."""
        return self.directory / SPOOL_NAME


@dataclass(frozen=True, slots=True)
class Note:
    """A text file written beside a file that is set down: ``<file><suffix>``."""

    suffix: str
    text: str
    append_spool: bool = False


def _folder_problem(folder: Path) -> str | None:
    """Why ``folder`` could not be used or created, or ``None``."""
    existing = folder
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"cannot create {folder}: {existing} is not a folder"
    except OSError as exc:
        return f"cannot check {folder}: {exc.strerror or exc}"
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    if existing == folder:
        return f"{folder} is not writable"
    return f"cannot create {folder}: {existing} is not writable"


class Inbox:
    """The inbox folder and its ``processing``, ``processed`` and ``failed`` folders."""

    def __init__(self, config: CsvDropConfig) -> None:
        self.root = config.inbox
        self.processing = config.processing_path
        self.processed = config.processed_path
        self.failed = config.failed_path
        self.ledger_dir = config.ledger_path.parent
        self.stable_seconds = config.stable_seconds
        self._patterns = tuple(p.lower() for p in config.patterns)
        self._ignore = tuple(p.lower() for p in config.ignore_patterns)
        # name -> (size, mtime_ns) at the previous listing: a change means "still being written".
        self._seen: dict[str, tuple[int, int]] = {}

    def problems(self) -> list[Problem]:
        """What would stop ``prepare`` (a missing inbox, a folder that cannot be made),
        found without creating or changing anything: for ``syncd config check``."""
        try:
            if not self.root.is_dir():
                what = "is not a folder" if self.root.exists() else "does not exist"
                return [Problem("inbox", f"{self.root} {what}")]
        except OSError as exc:
            return [Problem("inbox", f"{self.root} cannot be read: {exc.strerror or exc}")]
        problems = []
        if not os.access(self.root, os.W_OK | os.X_OK):
            problems.append(Problem("inbox", f"{self.root} is not writable (files move out)"))
        for option, folder in (
            ("processing_dir", self.processing),
            ("processed_dir", self.processed),
            ("failed_dir", self.failed),
            ("ledger_file", self.ledger_dir),
        ):
            problem = _folder_problem(folder)
            if problem:
                problems.append(Problem(option, problem))
        return problems

    def prepare(self) -> None:
        """Create the folders; ``ConfigError`` if the inbox is missing or a folder is on
        another filesystem (a move there would be a copy, not an atomic rename)."""
        if not self.root.is_dir():
            raise ConfigError([Problem("inbox", f"{self.root} is not a directory")])
        device = self.root.stat().st_dev
        problems = []
        for option, folder in (
            ("processing_dir", self.processing),
            ("processed_dir", self.processed),
            ("failed_dir", self.failed),
            ("ledger_file", self.ledger_dir),
        ):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problems.append(Problem(option, f"cannot create {folder}: {exc.strerror}"))
                continue
            if option != "ledger_file" and folder.stat().st_dev != device:
                problems.append(
                    Problem(option, f"{folder} must be on the same filesystem as the inbox")
                )
        if problems:
            raise ConfigError(problems)

    def wanted(self, name: str) -> bool:
        """Whether a file of this name is taken at all (pattern, and not a temp name)."""
        lower = name.lower()
        return any(fnmatchcase(lower, p) for p in self._patterns) and not any(
            fnmatchcase(lower, p) for p in self._ignore
        )

    def ready(self) -> list[Path]:
        """Dropped files that are complete, oldest modification first, then by name.

        Complete means: a wanted name, a regular file, last modified at least
        ``stable_seconds`` ago and, if this ``Inbox`` listed the folder before (only in
        a long-running process), the same size and mtime as then. A file that arrives
        with an old mtime is taken at once (see the module docstring).
        """
        now = time.time()
        observed: dict[str, tuple[int, int]] = {}
        ready: list[tuple[int, str]] = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not self.wanted(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                seen = (info.st_size, info.st_mtime_ns)
                observed[entry.name] = seen
                if self.stable_seconds > 0:
                    previous = self._seen.get(entry.name)
                    if previous is not None and previous != seen:
                        continue
                    if now - info.st_mtime < self.stable_seconds:
                        continue
                ready.append((info.st_mtime_ns, entry.name))
        self._seen = observed
        return [self.root / name for _, name in sorted(ready)]

    def claim(self, path: Path, *, recovered: bool = False) -> Claim | None:
        """Move ``path`` into a new claim folder; ``None`` if another process got it first."""
        directory = self.processing / _claim_id()
        directory.mkdir()
        lock = ClaimLock.acquire(directory / LOCK_NAME)
        if lock is None:  # another process's recovery is looking in: leave the file for later
            _remove_claim_dir(directory)
            return None
        try:
            path.rename(directory / path.name)
        except OSError as exc:
            _remove_claim_dir(directory)
            lock.release()
            if not isinstance(exc, FileNotFoundError):
                log.warning("cannot claim file", file=display_name(path), error=exc.strerror)
            return None
        self._seen.pop(path.name, None)
        return Claim(directory, path.name, lock, recovered=recovered)

    def recover(self) -> list[Claim]:
        """Claims left by a process that died (their lock is free), oldest file first.

        A bare file found directly in ``processing/`` is claimed as well.
        """
        found: list[tuple[int, str, Claim]] = []
        with os.scandir(self.processing) as entries:
            listing = list(entries)
        for entry in listing:
            if entry.name.startswith("."):
                continue
            if entry.is_file(follow_symlinks=False):
                claim = self.claim(Path(entry.path), recovered=True)
            elif entry.is_dir(follow_symlinks=False):
                claim = self._take_over(Path(entry.path))
            else:
                continue
            if claim is not None:
                found.append((claim.path.stat().st_mtime_ns, claim.name, claim))
        found.sort(key=lambda item: item[:2])
        return [claim for _, _, claim in found]

    def _take_over(self, directory: Path) -> Claim | None:
        lock = ClaimLock.acquire(directory / LOCK_NAME)
        if lock is None:
            return None  # a live batch holds it, here or in another process
        try:
            name = _data_file(directory)
            age = time.time() - directory.stat().st_mtime
        except FileNotFoundError:  # its owner finished and removed it meanwhile
            lock.release()
            return None
        if name is None:
            if age > STALE_EMPTY_CLAIM_SECONDS:
                _remove_claim_dir(directory)
            lock.release()
            return None
        (directory / SPOOL_NAME).unlink(missing_ok=True)  # a half report of the dead run
        log.warning(
            "recovering a file left in processing",
            file=display_name(name),
            claim=display_name(directory.name),
        )
        return Claim(directory, name, lock, recovered=True)

    def settle(self, claim: Claim, destination: Path, note: Note | None = None) -> Path:
        """Move the claimed file to ``destination`` (never overwriting: a clash gets a
        timestamp suffix), write ``note`` beside it, and drop the claim.

        Once the file is moved, nothing stops the claim from being dropped: a note
        that cannot be written is logged, not raised. If the move itself fails the
        ``OSError`` is raised and the claim kept (the caller decides to release it).
        """
        final = _move_no_clobber(claim.path, destination)
        try:
            if note is not None:
                _write_note(final.with_name(final.name + note.suffix), note, claim.spool)
        except (OSError, ValueError) as exc:  # ValueError: UnicodeError, a closed file
            log.error(
                "cannot write the note beside a file",
                file=display_name(final),
                note=note.suffix if note else "",
                error=str(exc),
            )
        finally:
            _remove_claim_dir(claim.directory)
            claim.lock.release()
        return final


def _claim_id() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{os.getpid()}-{secrets.token_hex(3)}"


def _data_file(directory: Path) -> str | None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                return entry.name
    return None


def _remove_claim_dir(directory: Path) -> None:
    for name in (SPOOL_NAME, LOCK_NAME):
        (directory / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        # Not empty means another process's recovery touched it: the next recovery removes it.
        directory.rmdir()


def _move_no_clobber(source: Path, destination: Path) -> Path:
    """Rename ``source`` into ``destination`` under its name, or a timestamped one if taken.

    A hard link fails if the target exists, which a rename would silently replace;
    on a filesystem without hard links fall back to check-then-rename.
    """
    stem, dot, suffix = source.name.rpartition(".")
    if not stem:
        stem, dot, suffix = source.name, "", ""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        if attempt == 0:
            name = source.name
        else:
            counter = f"-{attempt}" if attempt > 1 else ""
            name = f"{stem}.{stamp}{counter}{dot}{suffix}"
        target = destination / name
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if target.exists():
                continue
            source.rename(target)
            return target
        source.unlink()
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(destination / source.name))


def _write_note(path: Path, note: Note, spool: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # backslashreplace: a note is for people; an odd character must not lose it.
        with tmp.open("w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(note.text)
            if note.append_spool:
                with (
                    contextlib.suppress(FileNotFoundError),
                    spool.open(encoding="utf-8", errors="backslashreplace") as rows,
                ):
                    shutil.copyfileobj(rows, out)
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):  # gone once renamed; a half-written one must go
            tmp.unlink()
