"""Parsing and normalising the typed cells: IP, MAC, status, action.

Each parser takes a trimmed, non-empty cell and returns the normalised value, or
raises ``ValueError`` with a message that says what was expected.
"""

from __future__ import annotations

import re

from syncd.canonical import MAC as _CANONICAL_MAC
from syncd.canonical import canonical_ip, canonical_mac
from syncd.records import Action

# The forms a MAC cell may take (the canonical form itself is ``syncd.canonical``'s).
_MAC = re.compile(
    r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}"  # aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"  # aabb.ccdd.eeff (Cisco)
    r"|[0-9a-f]{12}"  # aabbccddeeff
)

STATUS_WORDS: dict[str, bool] = {
    "true": True,
    "up": True,
    "1": True,
    "yes": True,
    "false": False,
    "down": False,
    "0": False,
    "no": False,
}

ACTION_WORDS: dict[str, Action] = {"upsert": "upsert", "delete": "delete"}


def parse_ip(cell: str) -> str:
    """An IPv4 or IPv6 address in its compressed form; a prefix length (``10.0.0.1/24``,
    as NetBox writes interface addresses) is dropped, since the inventory holds an address."""
    address = canonical_ip(cell, interface=True)
    if address is None:
        raise ValueError("not a valid IPv4 or IPv6 address")
    return address


def parse_mac(cell: str) -> str:
    """A MAC address as ``aa:bb:cc:dd:ee:ff``, from that form, ``aa-bb-..``,
    ``aabb.ccdd.eeff`` or 12 bare hex digits (any case)."""
    lower = cell.lower()
    if _CANONICAL_MAC.fullmatch(lower):
        return lower
    if not _MAC.fullmatch(lower):
        raise ValueError(
            "not a MAC address (expected aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, "
            "aabb.ccdd.eeff or aabbccddeeff)"
        )
    canonical = canonical_mac(lower)
    assert canonical is not None  # every form _MAC accepts is a MAC address
    return canonical


def parse_status(cell: str) -> bool:
    """``true/up/1/yes`` -> True, ``false/down/0/no`` -> False (any case)."""
    try:
        return STATUS_WORDS[cell.casefold()]
    except KeyError:
        raise ValueError(f"not a status (one of: {'/'.join(STATUS_WORDS)})") from None


def parse_action(cell: str) -> Action:
    """``upsert`` or ``delete`` (any case)."""
    try:
        return ACTION_WORDS[cell.casefold()]
    except KeyError:
        raise ValueError(f"not an action (one of: {'/'.join(ACTION_WORDS)})") from None
