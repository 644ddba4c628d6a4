"""Walking the whole device list, and knowing afterwards whether the walk saw all of it.

Offset paging is exact only while nothing changes. A device added before the cursor
between two page requests pushes the rows after it one place on (the next page repeats
one, and the new device is never seen); a device removed before the cursor pulls them
one place back (the next page skips one). A caller that treats such a walk as the whole
inventory would call the skipped device absent. So a :class:`Listing` yields what it
can and, once exhausted, says whether the walk was **complete** and, if not, why
(``problems``). It is not complete when:

- the ``count`` the pages report changed during the walk;
- a page did not start where the one before ended: pages after the first are asked
  from the last row of the page before (one row of overlap, the *anchor*), so a shift
  either way shows as a page that does not start with the anchor, even when an add
  and a remove left ``count`` unchanged;
- a serial came back that was already listed;
- a page held fewer rows than ``count`` and the page size promised, or was empty
  before ``count`` was reached;
- a row was malformed (not a valid :class:`~syncd.inventory.models.Device`): it is
  skipped, and named in ``problems`` (serial if it has one, offset, what was wrong);
- at the end, the rows seen do not add up to ``count``.

Iterated, a listing yields validated ``Device`` objects; :meth:`Listing.rows` walks it
yielding plain :class:`~syncd.listed.ListedDevice` rows instead (what a mirror refresh
takes): each page is validated in one call into plain dicts by ``Device``'s own rules,
and only a row that fails is validated into a ``Device``, to be named as above.

A page that holds nothing new (a server that ignores ``offset``, or more devices added
before the cursor than a page holds) ends the walk, incomplete, rather than loop.

What paging cannot see: an add and a remove both before the cursor between the same
two pages cancel out, and the walk looks complete while missing the added device and
still listing the removed one. The next walk sees both; the apply step is idempotent
for exactly this (``409`` on create is compared and adopted, ``404`` is reported).

A malformed page envelope (not JSON, no ``results`` list, no ``count``) is not a row
problem but a broken server: the page fetch raises ``ProtocolError`` as any read does.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from enum import Enum
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from syncd.inventory.models import Device
from syncd.listed import ListedDevice, listed_page
from syncd.redact import redact

__all__ = ["MAX_PROBLEMS", "FetchPage", "ListPage", "Listing"]

log = structlog.get_logger("syncd.inventory")

#: Problems kept (and logged) one by one; beyond this they are only counted.
MAX_PROBLEMS = 100
#: Validation errors quoted per malformed row.
_ERRORS_QUOTED = 3
#: Longest serial quoted in a problem.
_SERIAL_CHARS = 80


class ListPage(BaseModel):
    """The list endpoint's envelope; its rows are checked one by one, not here."""

    model_config = ConfigDict(extra="allow", frozen=True)

    count: int = Field(ge=0)
    next: str | None = None
    previous: str | None = None
    results: list[Any]


#: Fetches one page: ``(offset, limit) -> ListPage`` (with retries; raises on failure).
FetchPage = Callable[[int, int], ListPage]


class _State(Enum):
    WALKING = "walking"
    ENDED = "ended"
    FAILED = "failed"


class Listing(Iterator[Device]):
    """Every device of one walk over the list endpoint: a lazy, single-use iterator.

    Nothing is fetched until the first ``next()``. Once it is exhausted (or a page fetch
    raised), :attr:`complete` and :attr:`problems` tell whether the walk can stand for
    the whole listing. Problems are also logged (``inventory.listing_problem``).
    """

    def __init__(
        self,
        fetch: FetchPage,
        *,
        page_size: int,
        filtered: bool = False,
        secrets: Iterable[str | SecretStr] = (),
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self._fetch = fetch
        self._size = page_size
        self._secrets = tuple(secrets)
        self._filtered = filtered
        self._state = _State.WALKING
        self._problems: list[str] = []
        self._dropped = 0
        self._offset = 0
        self._seen: set[str] = set()
        self._unnamed = 0  # malformed rows without a serial: counted, never deduplicated
        self._count: int | None = None
        self._listed = 0
        self._pages = 0
        self._plain = False  # rows(): plain ListedDevice rows instead of Devices
        self._walk: Iterator[Any] = self._pages_of_devices()

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Listing:
        return self

    def __next__(self) -> Device:
        item: Device = self._step()
        return item

    def rows(self) -> Iterator[ListedDevice]:
        """The same walk, yielding each valid row as a plain
        :class:`~syncd.listed.ListedDevice` (what a mirror refresh takes): each page is
        validated in one call (``syncd.listed.listed_page``), and only a row that fails
        is validated into a ``Device``, which names what is wrong as the walk always has.
        Call it before the walk starts, instead of iterating the listing itself."""
        if self._pages or self._state is not _State.WALKING:
            raise RuntimeError("the listing has already been walked")
        self._plain = True
        return self._plain_rows()

    def _plain_rows(self) -> Iterator[ListedDevice]:
        while True:
            try:
                yield self._step()
            except StopIteration:
                return

    def _step(self) -> Any:
        """The walk's next item, keeping its state (ended, failed) as it goes."""
        try:
            return next(self._walk)
        except StopIteration:
            if self._state is _State.WALKING:
                self._state = _State.ENDED
                self._log_end()
            raise
        except BaseException as exc:
            self._state = _State.FAILED
            self._problem(f"offset {self._offset}: the walk stopped: {type(exc).__name__}: {exc}")
            self._log_end()
            raise

    # -- what the walk found -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the walk is over: ran to its end, or a page fetch raised."""
        return self._state is not _State.WALKING

    @property
    def complete(self) -> bool:
        """Whether the walk ran to its end and saw every row exactly once, all valid.

        Known only once :attr:`finished`; asking earlier raises ``RuntimeError`` (a walk
        not yet done cannot vouch for anything, and a silent ``False`` would hide the
        mistake). ``False`` after a failed page fetch. Says nothing about filters: see
        :attr:`filtered`.
        """
        if self._state is _State.WALKING:
            raise RuntimeError("the listing has not been walked to its end yet")
        return self._state is _State.ENDED and not self._problems

    @property
    def problems(self) -> list[str]:
        """Why the walk is not complete, in the order found (empty when it is).

        At most :data:`MAX_PROBLEMS` are listed; a last line counts the rest.
        """
        if self._dropped:
            return [*self._problems, f"+{self._dropped} more problems not listed"]
        return list(self._problems)

    @property
    def filtered(self) -> bool:
        """True when filters narrowed the listing: even complete, it is not the inventory."""
        return self._filtered

    @property
    def listed(self) -> int:
        """Devices yielded so far."""
        return self._listed

    @property
    def pages(self) -> int:
        """Pages fetched so far."""
        return self._pages

    @property
    def count(self) -> int | None:
        """The ``count`` the last page reported (``None`` before the first page)."""
        return self._count

    def __repr__(self) -> str:
        return (
            f"Listing(state={self._state.value}, listed={self._listed}, pages={self._pages}, "
            f"count={self._count}, problems={len(self._problems) + self._dropped})"
        )

    # -- the walk ----------------------------------------------------------------------------

    def _pages_of_devices(self) -> Iterator[Any]:
        anchor: str | None = None  # the serial the next page must start with
        while True:
            page = self._fetch(self._offset, self._size)
            self._pages += 1
            self._check_count(page.count)
            rows = page.results
            if not rows:
                if self._offset < page.count:
                    self._problem(
                        f"offset {self._offset}: empty page, though the server counts "
                        f"{page.count} devices"
                    )
                break
            self._check_length(len(rows), page.count)
            start = self._check_anchor(anchor, rows[0])
            fresh = yield from self._rows(rows, start)
            end = self._offset + len(rows)
            if fresh == 0 and len(rows) > start:
                self._problem(
                    f"offset {self._offset}: the page holds only devices already listed (the "
                    "server ignores offset, or many devices were added meanwhile); walk stopped"
                )
                return
            if end >= page.count:
                break
            # Ask the next page from this page's last row, so that a shift shows.
            anchor = _serial_of(rows[-1]) if len(rows) >= 2 else None
            self._offset = end - 1 if anchor is not None else end
        self._check_total()

    def _rows(self, rows: list[Any], start: int) -> Generator[Any, None, int]:
        """Yield the valid new rows from ``start``; returns how many rows were new."""
        fresh = 0
        plain = listed_page(rows[start:]) if self._plain else None
        for index in range(start, len(rows)):
            item = rows[index]
            position = self._offset + index
            serial = _serial_of(item)
            if serial is not None and serial in self._seen:
                self._problem(f"offset {position}: serial {_quoted(serial)} listed again")
                continue
            fresh += 1
            if serial is None:
                self._unnamed += 1
            else:
                self._seen.add(serial)
            device = plain[index - start] if plain is not None else None
            if device is None:
                device = self._validate(item, position, serial)
            if device is not None:
                self._listed += 1
                yield device
        return fresh

    def _validate(self, item: object, position: int, serial: str | None) -> Any:
        """The row as a ``Device`` (``rows()``: as a ``ListedDevice``), or ``None`` once
        named as malformed."""
        try:
            device = Device.model_validate(item)
            return ListedDevice.of(device) if self._plain else device
        except ValidationError as exc:
            who = f"serial {_quoted(serial)}" if serial is not None else "no serial"
            self._problem(f"offset {position} ({who}): skipped, not a valid device: {_short(exc)}")
            return None

    # -- checks ------------------------------------------------------------------------------

    def _check_count(self, count: int) -> None:
        if self._count is not None and count != self._count:
            self._problem(
                f"offset {self._offset}: the server's count changed from {self._count} to "
                f"{count} during the walk (devices added or removed)"
            )
        self._count = count

    def _check_length(self, got: int, count: int) -> None:
        due = min(self._size, count - self._offset)
        if got < due:
            self._problem(
                f"offset {self._offset}: short page, {got} of {due} devices due "
                f"(count {count}, page size {self._size})"
            )

    def _check_anchor(self, anchor: str | None, first: object) -> int:
        """Where the new rows of a page start: after the anchor when it is in place."""
        if anchor is None:
            return 0
        if _serial_of(first) == anchor:
            return 1
        self._problem(
            f"offset {self._offset}: the page does not start with {_quoted(anchor)}, the last "
            "device of the page before: devices were added or removed before this point, so "
            "some may have been skipped or listed twice"
        )
        return 0

    def _check_total(self) -> None:
        rows = len(self._seen) + self._unnamed
        if not self._problems and self._count is not None and rows != self._count:
            self._problem(f"the walk found {rows} devices, but the server counts {self._count}")

    # -- reporting ---------------------------------------------------------------------------

    def _problem(self, text: str) -> None:
        if len(self._problems) >= MAX_PROBLEMS:
            self._dropped += 1
            return
        text = redact(text, self._secrets)
        self._problems.append(text)
        log.warning("inventory.listing_problem", problem=text)

    def _log_end(self) -> None:
        log.info(
            "inventory.listing_done",
            complete=self._state is _State.ENDED and not self._problems,
            failed=self._state is _State.FAILED,
            listed=self._listed,
            pages=self._pages,
            count=self._count,
            problems=len(self._problems) + self._dropped,
        )


def _serial_of(item: object) -> str | None:
    """The row's serial when it has a string one (a malformed row may still have one)."""
    if isinstance(item, dict):
        serial = item.get("serial_number")
        if isinstance(serial, str):
            return serial
    return None


def _quoted(serial: str) -> str:
    text = repr(serial)
    return text if len(text) <= _SERIAL_CHARS else text[: _SERIAL_CHARS - 1] + "…"


def _short(exc: ValidationError) -> str:
    """Pydantic's messages, first few only, with where each applies (never the input)."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}"
        for err in errors[:_ERRORS_QUOTED]
    ]
    more = f" (+{len(errors) - _ERRORS_QUOTED} more)" if len(errors) > _ERRORS_QUOTED else ""
    return "; ".join(parts) + more
