"""Query parameters of the list and detail endpoints, and DRF's paging links.

Parsing follows the contract; where it is silent it follows django-filter and
DRF's ``LimitOffsetPagination``:

- a parameter given more than once counts with its last value (Django's ``QueryDict``);
- an empty value (``?status=``) is validated like any other, so it is a 400 for every
  filter (the contract: "anything else -> 400"; django-filter would ignore it);
- ``limit``: default 20, larger than 100 is clamped to 100, zero, negative or not an
  integer falls back to the default; ``offset``: not an integer or negative is 0;
- ``next``/``previous`` are absolute URLs built from the request URL with ``limit``
  and ``offset`` replaced and the query re-encoded in sorted order (DRF's
  ``replace_query_param``); ``previous`` drops ``offset`` when it would be 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

_TRUE_PARAMS = frozenset({"1", "true", "True"})
_FALSE_PARAMS = frozenset({"0", "false", "False"})

_DATE = re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$")
_DATETIME = re.compile(
    r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})[T ]"
    r"(?P<H>\d{1,2}):(?P<M>\d{1,2})(?::(?P<S>\d{1,2})(?:[.,](?P<f>\d{1,6})\d*)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
# A "+" left unencoded in a query string arrives as a space: "... 00:01:00 00:00".
_SPACE_OFFSET = re.compile(
    r"^(?P<head>\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{1,2}(?::\d{1,2}(?:[.,]\d+)?)?)"
    r" (?P<off>\d{2}(?::?\d{2})?)$"
)


class ParamError(ValueError):
    """A query parameter has a value the API refuses (400 naming the parameter)."""


def parse_bool_param(value: str) -> bool:
    """``0``/``false``/``False`` -> False, ``1``/``true``/``True`` -> True, else an error."""
    if value in _TRUE_PARAMS:
        return True
    if value in _FALSE_PARAMS:
        return False
    raise ParamError(f"Select a valid choice. {value} is not one of the available choices.")


def parse_int_param(value: str) -> int:
    """An integer id (surrounding whitespace allowed, as Django's ``int()`` does)."""
    try:
        return int(value.strip())
    except ValueError:
        raise ParamError("Enter a whole number.") from None


def parse_datetime_param(value: str) -> datetime:
    """``2000-01-01``, ``2000-01-01 00:01:00``, ``...T...``; ``+00:00``, ``Z`` or naive (UTC)."""
    text = value.strip()
    if spaced := _SPACE_OFFSET.match(text):
        text = f"{spaced['head']}+{spaced['off']}"
    try:
        if m := _DATE.match(text):
            return datetime(int(m["y"]), int(m["m"]), int(m["d"]), tzinfo=UTC)
        if m := _DATETIME.match(text):
            micro = int((m["f"] or "0").ljust(6, "0"))
            return datetime(
                int(m["y"]),
                int(m["m"]),
                int(m["d"]),
                int(m["H"]),
                int(m["M"]),
                int(m["S"] or 0),
                micro,
                tzinfo=_tz(m["tz"]),
            )
    except ValueError:
        pass
    raise ParamError("Enter a valid date/time.")


def _tz(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return timezone(sign * timedelta(minutes=minutes))


def _positive_int(value: str, *, strict: bool, cutoff: int | None = None) -> int:
    number = int(value)
    if number < 0 or (number == 0 and strict):
        raise ValueError(value)
    return min(number, cutoff) if cutoff is not None else number


def page_limit(params: Mapping[str, str]) -> int:
    """DRF ``LimitOffsetPagination.get_limit`` with default 20 and max 100."""
    try:
        return _positive_int(params["limit"], strict=True, cutoff=MAX_LIMIT)
    except (KeyError, ValueError):
        return DEFAULT_LIMIT


def page_offset(params: Mapping[str, str]) -> int:
    """DRF ``LimitOffsetPagination.get_offset``."""
    try:
        return _positive_int(params["offset"], strict=False)
    except (KeyError, ValueError):
        return 0


def replace_query_param(url: str, key: str, value: object) -> str:
    """DRF's ``replace_query_param``: set one parameter, re-encode the query sorted."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    query_dict[key] = [str(value)]
    return urlunsplit(
        (scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment)
    )


def remove_query_param(url: str, key: str) -> str:
    """DRF's ``remove_query_param``."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    query_dict.pop(key, None)
    return urlunsplit(
        (scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment)
    )


@dataclass(frozen=True, slots=True)
class PageLinks:
    """``next`` and ``previous`` of one page."""

    next: str | None
    previous: str | None


def page_links(url: str, *, count: int, limit: int, offset: int) -> PageLinks:
    """DRF ``get_next_link`` / ``get_previous_link`` for the page at ``offset``."""
    next_url: str | None = None
    if offset + limit < count:
        next_url = replace_query_param(
            replace_query_param(url, "limit", limit), "offset", offset + limit
        )
    previous_url: str | None = None
    if offset > 0:
        base = replace_query_param(url, "limit", limit)
        if offset - limit <= 0:
            previous_url = remove_query_param(base, "offset")
        else:
            previous_url = replace_query_param(base, "offset", offset - limit)
    return PageLinks(next=next_url, previous=previous_url)
