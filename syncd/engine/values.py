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

import re
from collections.abc import Callable

from syncd.canonical import IPV4 as _IPV4
from syncd.canonical import MAC as _MAC_CANONICAL
from syncd.canonical import canonical_ip, canonical_mac
from syncd.records import OPTIONAL_TEXT

__all__ = [
    "OPTIONAL_TEXT",
    "InvalidValueError",
    "canonical_ip",
    "canonical_mac",
    "current_value",
    "desired_ip",
    "desired_mac",
]


class InvalidValueError(ValueError):
    """A source value the inventory could not take (the message names value and field)."""


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
