"""Field values in canonical form, so equal things compare equal.

Choices (the contract is silent on them):

- Optional text fields (``ip_address``, ``mac_address``, ``location``,
  ``description``, ``firmware_version``): an empty string and ``None`` are the
  same value, "empty". The API may answer either for a field never set, and a
  source's ``""`` ("this field is empty") must not fight the inventory's ``null``.
  A source's ``""`` therefore clears the field, sent as ``None`` (JSON ``null``).
- ``name``, ``type`` and ``organization`` are required by the API and cannot be
  cleared: a source's ``""`` for them counts as "says nothing", so a lower-priority
  source may still give one.
- ``ip_address`` is compared and sent in ``ipaddress``' canonical text
  (``2001:db8::1``, not ``2001:DB8:0::1``); a value that is not an address is a
  reject when it comes from a source, and compared as text when it comes from the
  inventory.
- ``mac_address`` is compared and sent as lowercase colon-separated hex
  (``aa:bb:cc:dd:ee:ff``) whatever the source's separators (``-``, ``.``, none).
- Other strings are compared exactly (no trimming, no case folding).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

#: API fields where ``""`` and ``None`` both mean "empty".
OPTIONAL_TEXT: frozenset[str] = frozenset(
    {"ip_address", "mac_address", "location", "description", "firmware_version"}
)

# Canonical dotted-quad IPv4 (no leading zeros), the common case, checked without
# building an ipaddress object (several times faster, and planning 1M creates
# must stay cheap).
_IPV4 = re.compile(
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
)
_MAC_CANONICAL = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_MAC_SEPARATORS = str.maketrans("", "", ":-. ")
_HEX = frozenset("0123456789abcdef")


class InvalidValueError(ValueError):
    """A source value the inventory could not take (the message names value and field)."""


def canonical_ip(value: str) -> str | None:
    """The canonical text of an IP address, or ``None`` if ``value`` is not one."""
    if _IPV4.fullmatch(value):
        return value
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def canonical_mac(value: str) -> str | None:
    """A MAC address as ``aa:bb:cc:dd:ee:ff``, or ``None`` if ``value`` is not one."""
    if _MAC_CANONICAL.fullmatch(value):
        return value
    digits = value.strip().lower().translate(_MAC_SEPARATORS)
    if len(digits) != 12 or not _HEX.issuperset(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def current_value(api_field: str, value: object) -> object:
    """An inventory (or previously written) value in canonical form, for comparing.

    Never fails: an inventory value that does not parse is compared as it is.
    """
    if api_field in OPTIONAL_TEXT:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            if api_field == "ip_address":
                return canonical_ip(value) or value
            if api_field == "mac_address":
                return canonical_mac(value) or value
    return value


def desired_ip(value: object) -> str | None:
    """A source's ``ip_address`` in canonical form (``""`` -> ``None``, "empty").

    Raises ``InvalidValueError`` when it is not an IP address.
    """
    return _desired(value, _IPV4, canonical_ip, "ip_address", "an IP address")


def desired_mac(value: object) -> str | None:
    """A source's ``mac_address`` in canonical form (``""`` -> ``None``, "empty").

    Raises ``InvalidValueError`` when it is not a MAC address.
    """
    return _desired(value, _MAC_CANONICAL, canonical_mac, "mac_address", "a MAC address")


def _desired(
    value: object,
    canonical_form: re.Pattern[str],
    canonical: Callable[[str], str | None],
    field: str,
    what: str,
) -> str | None:
    if isinstance(value, str) and canonical_form.fullmatch(value):  # the common case, first
        return value
    if value == "":
        return None
    result = canonical(value) if isinstance(value, str) else None
    if result is None:
        raise InvalidValueError(f"{field} {value!r} is not {what}")
    return result
