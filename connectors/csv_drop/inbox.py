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

**Its own folders are real folders, held open.** Anyone who can write into the inbox
could otherwise plant a symbolic link named ``processed`` and have syncd move files
and write notes into any folder syncd can write. So ``prepare()`` (the first step of
every fetch) refuses to go on, with a ``ConfigError`` naming the option and the
folder, when ``processing``, ``processed`` or ``failed``, or a folder on the way to one
of them inside the inbox, is a symbolic link or not a directory. It then keeps each of
them open, and every later step works through those open folders (the ``*at`` system
calls, ``O_NOFOLLOW``), never through their names: a folder renamed away and replaced
by a link after that is not followed (the file lands in the real folder, wherever it
was moved), and the next fetch refuses the link. Claim folders are made ``0700`` and
opened the same way; the claimed file is opened ``O_NOFOLLOW`` and read only if it is
a regular file. A note is written to a fresh temporary name (``O_CREAT|O_EXCL|
O_NOFOLLOW``, after removing whatever had that name) and renamed over the note's name,
so a link planted at either name is replaced, never written through. The inbox folder
itself is the operator's choice and may be reached through links.

**Entries that are not regular files.** A symbolic link, named pipe, socket or device
with a wanted name is listed at once, claimed like a file (the rename moves the entry
itself, never what it points to), never opened, and refused: the connector yields it
as a batch that is not accepted, so it is logged, counted as a refused batch, and moved
as it is to ``failed/`` with an ``.error.txt`` saying what it was. A directory with a
wanted name is left alone.

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
import io
import os
import secrets
import shutil
import stat
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO, TextIO

import structlog

from connectors.csv_drop.config import CsvDropConfig
from connectors.csv_drop.controls import CONTROL
from syncd.errors import ConfigError, Problem

log = structlog.get_logger("connectors.csv_drop")

LOCK_NAME = ".lock"
SPOOL_NAME = ".rejects"
#: A claim folder without a file is removed once this old (the claim step takes microseconds).
STALE_EMPTY_CLAIM_SECONDS = 60.0
#: How every folder is opened (the inbox's own ones with ``O_NOFOLLOW`` added).
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def display_name(path: Path | str) -> str:
    """``path`` as text that can always be encoded and printed: bytes that are not
    UTF-8 become ``\\xNN``, as do control characters (a newline or an escape sequence
    in a file name must not reach a log line or a terminal as such)."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if CONTROL.search(text) is None:
        return text
    return CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class Folder:
    """A directory held open: ``path`` names it for people, ``fd`` is what every
    operation in it goes through, so renaming the folder away and planting a link in
    its place changes nothing for whoever holds it. Closed once nothing refers to it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    def __repr__(self) -> str:
        return f"Folder({str(self.path)!r})"

    def lstat(self, name: str) -> os.stat_result:
        """``name``'s own status (a link is not followed)."""
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def open_child(self, name: str) -> Folder:
        """The real directory ``name`` in this one; ``OSError`` if it is a link or no directory."""
        return Folder(self.path / name, os.open(name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=self.fd))

    def open_file(self, name: str, flags: int, mode: int = 0o666) -> int:
        """``os.open`` of ``name`` in this folder, never through a link."""
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)

    def remove(self, name: str) -> None:
        """Unlink ``name`` if it is there (a link is removed, not followed)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)


class ClaimLock:
    """An exclusive ``flock`` held on an open descriptor; released on ``release()`` or GC."""

    def __init__(self, fd: int) -> None:
        self._finalizer = weakref.finalize(self, os.close, fd)

    @classmethod
    def acquire(cls, folder: Folder) -> ClaimLock | None:
        """Lock the claim folder's ``.lock`` (created if missing) without waiting;
        ``None`` if it is held, or cannot be opened."""
        try:
            fd = folder.open_file(LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):  # not just gone meanwhile
                log.warning("cannot lock a claim", claim=display_name(folder.path), error=str(exc))
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


class _FileIn:
    """What reading a dropped file needs, whether claimed or read where it lies:
    ``name`` in ``folder``, opened through the folder's descriptor."""

    folder: Folder
    name: str

    @property
    def path(self) -> Path:
        """Where the file is now (for people: reading goes through ``open()``)."""
        return self.folder.path / self.name

    def open(self) -> BinaryIO:
        """The file, open for reading; ``OSError`` unless it is a regular file."""
        fd = self.folder.open_file(self.name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def identity(self) -> tuple[int, int]:
        """Size and mtime (ns) of the file."""
        info = self.folder.lstat(self.name)
        return info.st_size, info.st_mtime_ns


@dataclass(eq=False)
class Claim(_FileIn):
    """An entry this process holds: ``name`` in the claim folder ``folder`` (held open,
    inside ``parent``, the ``processing`` folder), locked until set down. ``kind`` is
    empty for a regular file, else what the entry is instead (it is never opened)."""

    folder: Folder
    name: str
    lock: ClaimLock
    parent: Folder
    recovered: bool = False
    kind: str = ""

    @property
    def directory(self) -> Path:
        """The claim folder."""
        return self.folder.path

    def spool_writer(self) -> TextIO:
        """Append to the rejects found while reading, for the report."""
        fd = self.folder.open_file(SPOOL_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")

    def spool_reader(self) -> TextIO | None:
        """The rejects written while reading, or ``None`` if there were none."""
        try:
            fd = self.folder.open_file(SPOOL_NAME, os.O_RDONLY)
        except FileNotFoundError:
            return None
        return os.fdopen(fd, encoding="utf-8", errors="backslashreplace")


class InPlace(_FileIn):
    """A dropped file read where it lies (a dry run): never claimed, moved or noted. It
    offers what a batch reads through a ``Claim`` (``open``, ``identity``, a spool that
    is thrown away)."""

    recovered = False

    def __init__(self, folder: Folder, name: str) -> None:
        self.folder = folder
        self.name = name
        self.kind = _kind(folder, name)

    def spool_writer(self) -> TextIO:
        """Where a claim keeps its rejects for the report: nowhere (nothing is written)."""
        return io.StringIO()


@dataclass
class Listing:
    """One look at the inbox: the files ready to take, those not complete yet (with
    why), and each regular file's ``(size, mtime_ns)``."""

    ready: list[Path] = field(default_factory=list)
    waiting: list[tuple[Path, str]] = field(default_factory=list)
    observed: dict[str, tuple[int, int]] = field(default_factory=dict)


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
    """The inbox folder and its ``processing``, ``processed`` and ``failed`` folders.

    ``prepare()`` opens them (every fetch calls it first); every other method works
    through the folders it opened.
    """

    def __init__(self, config: CsvDropConfig, *, ledger_dir: Path | None = None) -> None:
        self.root = config.inbox
        self.processing = config.processing_path
        self.processed = config.processed_path
        self.failed = config.failed_path
        self.ledger_dir = ledger_dir
        self.stable_seconds = config.stable_seconds
        self._patterns = tuple(p.lower() for p in config.patterns)
        self._ignore = tuple(p.lower() for p in config.ignore_patterns)
        # name -> (size, mtime_ns) at the previous listing: a change means "still being written".
        self._seen: dict[str, tuple[int, int]] = {}
        self._folders: dict[Path, Folder] = {}
        #: The files the last ``ready()`` did not take yet, each with why.
        self.waiting: list[tuple[Path, str]] = []

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
        folders = [
            ("processing_dir", self.processing),
            ("processed_dir", self.processed),
            ("failed_dir", self.failed),
        ]
        if self.ledger_dir is not None:  # the JSON ledger: only without a store
            folders.append(("ledger_file", self.ledger_dir))
        for option, folder in folders:
            problem = _folder_problem(folder)
            if problem:
                problems.append(Problem(option, problem))
        return problems

    def prepare(self) -> None:
        """Open the inbox and its folders, creating what is missing.

        ``ConfigError`` if the inbox is not a directory; if one of its folders, or a
        folder on the way to it inside the inbox, is a symbolic link or not a
        directory; or if one is on another filesystem (a move there would be a copy,
        not an atomic rename). ``ledger_dir`` (the JSON ledger's folder, when there is
        one) is only created.
        """
        try:
            root = Folder(self.root, os.open(self.root, _DIRECTORY))
        except OSError:
            raise ConfigError([Problem("inbox", f"{self.root} is not a directory")]) from None
        device = os.fstat(root.fd).st_dev
        folders = {self.root: root}
        problems = []
        for option, path in (
            ("processing_dir", self.processing),
            ("processed_dir", self.processed),
            ("failed_dir", self.failed),
        ):
            opened = _open_own_folder(root, path)
            if isinstance(opened, str):
                problems.append(Problem(option, opened))
                continue
            if os.fstat(opened.fd).st_dev != device:
                problems.append(
                    Problem(option, f"{path} must be on the same filesystem as the inbox")
                )
            folders[path] = opened
        if self.ledger_dir is not None:
            try:
                self.ledger_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problems.append(
                    Problem("ledger_file", f"cannot create {self.ledger_dir}: {exc.strerror}")
                )
        if problems:
            raise ConfigError(problems)
        self._folders = folders

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
        with an old mtime is taken at once (see the module docstring). An entry with a
        wanted name that is neither a regular file nor a directory (a symbolic link, a
        pipe, a socket, a device) is listed at once too: it is claimed, never opened,
        and refused. The files not ready yet are kept in ``waiting`` (with why).
        """
        found = self.scan(self._folder(self.root))
        self._seen = found.observed
        self.waiting = found.waiting
        return found.ready

    def scan(self, root: Folder) -> Listing:
        """The inbox ``root`` as ``ready`` would find it (see there), changing nothing."""
        now = time.time()
        listing = Listing()
        ready: list[tuple[int, str]] = []
        with os.scandir(root.fd) as entries:
            for entry in entries:
                if not self.wanted(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    continue
                if not stat.S_ISREG(info.st_mode):
                    ready.append((info.st_mtime_ns, entry.name))
                    continue
                seen = (info.st_size, info.st_mtime_ns)
                listing.observed[entry.name] = seen
                why = self._not_yet(entry.name, seen, now - info.st_mtime)
                if why:
                    listing.waiting.append((self.root / entry.name, why))
                    continue
                ready.append((info.st_mtime_ns, entry.name))
        listing.ready = [self.root / name for _, name in sorted(ready)]
        listing.waiting.sort()
        return listing

    def _not_yet(self, name: str, seen: tuple[int, int], age: float) -> str:
        """Why a regular file is not complete yet ("" if it is)."""
        if self.stable_seconds <= 0:
            return ""
        previous = self._seen.get(name)
        if previous is not None and previous != seen:
            return "waiting: it changed since the last look (still being written?)"
        if age < self.stable_seconds:
            left = max(1, round(self.stable_seconds - age))
            return f"waiting: {left} s left (stable_seconds = {self.stable_seconds:g})"
        return ""

    def open_root(self) -> Folder:
        """The inbox folder itself, opened (``ConfigError`` if it is not a directory),
        without opening or making its own folders: for a look that changes nothing."""
        try:
            return Folder(self.root, os.open(self.root, _DIRECTORY))
        except OSError:
            raise ConfigError([Problem("inbox", f"{self.root} is not a directory")]) from None

    def claim(self, path: Path, *, recovered: bool = False) -> Claim | None:
        """Move ``path`` (in the inbox or ``processing``) into a new claim folder;
        ``None`` if another process got it first."""
        return self._claim(self._folder(path.parent), path.name, recovered=recovered)

    def _claim(self, source: Folder, name: str, *, recovered: bool) -> Claim | None:
        processing = self._folder(self.processing)
        claim_id = _claim_id()
        os.mkdir(claim_id, 0o700, dir_fd=processing.fd)
        folder = processing.open_child(claim_id)
        lock = ClaimLock.acquire(folder)
        if lock is None:  # another process's recovery is looking in: leave the file for later
            _remove_claim_dir(processing, folder)
            return None
        try:
            # A rename moves the entry itself: a link is moved, never what it points to.
            os.rename(name, name, src_dir_fd=source.fd, dst_dir_fd=folder.fd)
        except OSError as exc:
            _remove_claim_dir(processing, folder)
            lock.release()
            if not isinstance(exc, FileNotFoundError):
                shown = display_name(source.path / name)
                log.warning("cannot claim file", file=shown, error=exc.strerror)
            return None
        self._seen.pop(name, None)
        return Claim(folder, name, lock, processing, recovered=recovered, kind=_kind(folder, name))

    def recover(self) -> list[Claim]:
        """Claims left by a process that died (their lock is free), oldest file first.

        Any other entry found directly in ``processing/`` is claimed as well (a
        regular file put there by hand; a link or the like, to be refused).
        """
        processing = self._folder(self.processing)
        with os.scandir(processing.fd) as entries:
            listing = [
                (entry.name, entry.is_dir(follow_symlinks=False))
                for entry in entries
                if not entry.name.startswith(".")
            ]
        found: list[tuple[int, str, Claim]] = []
        for name, is_dir in listing:
            if is_dir:
                claim = self._take_over(processing, name)
            else:
                claim = self._claim(processing, name, recovered=True)
            if claim is not None:
                found.append((claim.identity()[1], claim.name, claim))
        found.sort(key=lambda item: item[:2])
        return [claim for _, _, claim in found]

    def _take_over(self, processing: Folder, claim_id: str) -> Claim | None:
        try:
            folder = processing.open_child(claim_id)
        except OSError:  # its owner finished and removed it meanwhile
            return None
        lock = ClaimLock.acquire(folder)
        if lock is None:
            return None  # a live batch holds it, here or in another process
        name = _data_entry(folder)
        if name is None:
            if time.time() - os.fstat(folder.fd).st_mtime > STALE_EMPTY_CLAIM_SECONDS:
                _remove_claim_dir(processing, folder)
            lock.release()
            return None
        folder.remove(SPOOL_NAME)  # a half report of the dead run
        log.warning(
            "recovering a file left in processing",
            file=display_name(name),
            claim=display_name(claim_id),
        )
        return Claim(folder, name, lock, processing, recovered=True, kind=_kind(folder, name))

    def settle(self, claim: Claim, destination: Path, note: Note | None = None) -> Path:
        """Move the claimed file to ``destination`` (the inbox or one of its folders;
        never overwriting: a clash gets a timestamp suffix), write ``note`` beside it,
        and drop the claim.

        Once the file is moved, nothing stops the claim from being dropped: a note
        that cannot be written is logged, not raised. If the move itself fails the
        ``OSError`` is raised and the claim kept (the caller decides to release it).
        """
        target = self._folder(destination)
        final = _move_no_clobber(claim.folder, claim.name, target)
        try:
            if note is not None:
                _write_note(target, final + note.suffix, note, claim)
        except (OSError, ValueError) as exc:  # ValueError: UnicodeError, a closed file
            log.error(
                "cannot write the note beside a file",
                file=display_name(destination / final),
                note=note.suffix if note else "",
                error=str(exc),
            )
        finally:
            _remove_claim_dir(claim.parent, claim.folder)
            claim.lock.release()
        return destination / final

    def _folder(self, path: Path) -> Folder:
        if not self._folders:
            self.prepare()
        try:
            return self._folders[path]
        except KeyError:
            raise RuntimeError(f"{path} is not an open folder of this inbox") from None


def _open_own_folder(root: Folder, path: Path) -> Folder | str:
    """``path`` opened as a real directory (created if missing), or what is wrong with it.

    Inside the inbox every folder from the inbox down to ``path`` must be real (anyone
    who can write into the inbox could plant a link there); outside it, ``path`` itself
    (the folders above it are the operator's).
    """
    # Lexically: resolve() would follow the very links this is about.
    target = Path(os.path.abspath(path))  # noqa: PTH100
    base = Path(os.path.abspath(root.path))  # noqa: PTH100
    try:
        if target != base and target.is_relative_to(base):
            folder = Folder(base, os.dup(root.fd))
            steps = target.relative_to(base).parts
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            folder = Folder(target.parent, os.open(target.parent, _DIRECTORY))
            steps = (target.name,)
        for step in steps:
            with contextlib.suppress(FileExistsError):
                os.mkdir(step, dir_fd=folder.fd)
            try:
                folder = folder.open_child(step)
            except OSError as exc:
                return _not_a_folder(folder, step, target, exc)
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror}"
    return Folder(path, os.dup(folder.fd))


def _not_a_folder(parent: Folder, step: str, target: Path, exc: OSError) -> str:
    """Why ``step`` in ``parent`` (on the way to ``target``) cannot be used as a folder."""
    where = parent.path / step
    try:
        mode = parent.lstat(step).st_mode
    except OSError:
        mode = stat.S_IFDIR
    if stat.S_ISLNK(mode):
        what = "is a symbolic link"
    elif not stat.S_ISDIR(mode):
        what = "is not a directory"
    else:
        return f"cannot open {where}: {exc.strerror}"
    on_the_way = f" (on the way to {target})" if where != target else ""
    return f"{where} {what}{on_the_way}: syncd's own folders must be real directories"


def _kind(folder: Folder, name: str) -> str:
    """What ``name`` is if not a regular file (``""`` if it is, or cannot be told)."""
    try:
        mode = folder.lstat(name).st_mode
    except OSError:
        return ""  # opening it will say what is wrong
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link to {display_name(os.readlink(name, dir_fd=folder.fd))}"
        except OSError:
            return "a symbolic link"
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


def _claim_id() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{os.getpid()}-{secrets.token_hex(3)}"


def _data_entry(folder: Folder) -> str | None:
    """The claimed entry in a claim folder: its one name that is no dot file nor folder."""
    with os.scandir(folder.fd) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and not entry.is_dir(follow_symlinks=False):
                return entry.name
    return None


def _remove_claim_dir(parent: Folder, folder: Folder) -> None:
    for name in (SPOOL_NAME, LOCK_NAME):
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=folder.fd)
    with contextlib.suppress(OSError):
        # Not empty means another process's recovery touched it: the next recovery removes it.
        os.rmdir(folder.path.name, dir_fd=parent.fd)


def _move_no_clobber(source: Folder, name: str, destination: Folder) -> str:
    """Rename ``name`` from ``source`` into ``destination`` under its name, or a
    timestamped one if taken; the name it got.

    A hard link fails if the target exists, which a rename would silently replace;
    where a hard link is not possible (no support, or a link or special file another
    user owns, under ``fs.protected_hardlinks``) fall back to check-then-rename. Neither
    follows a link: a link is moved as itself.
    """
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        if attempt == 0:
            target = name
        else:
            counter = f"-{attempt}" if attempt > 1 else ""
            target = f"{stem}.{stamp}{counter}{dot}{suffix}"
        try:
            os.link(
                name,
                target,
                src_dir_fd=source.fd,
                dst_dir_fd=destination.fd,
                follow_symlinks=False,
            )
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if _exists(destination, target):
                continue
            os.rename(name, target, src_dir_fd=source.fd, dst_dir_fd=destination.fd)
            return target
        os.unlink(name, dir_fd=source.fd)
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(destination.path / name))


def _exists(folder: Folder, name: str) -> bool:
    try:
        folder.lstat(name)
    except FileNotFoundError:
        return False
    return True


def _write_note(folder: Folder, name: str, note: Note, claim: Claim) -> None:
    """Write ``note`` (and the claim's rejects, if asked) as ``name`` in ``folder``.

    Written to a fresh temporary file and renamed over ``name``: whatever was at either
    name (a leftover, or a link someone planted) is replaced, never written through.
    """
    tmp = f".{name}.tmp"
    try:
        folder.remove(tmp)
        fd = folder.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        # backslashreplace: a note is for people; an odd character must not lose it.
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(note.text)
            rows = claim.spool_reader() if note.append_spool else None
            if rows is not None:
                with rows:
                    shutil.copyfileobj(rows, out)
        os.rename(tmp, name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
    finally:
        with contextlib.suppress(OSError):  # gone once renamed; a half-written one must go
            os.unlink(tmp, dir_fd=folder.fd)
