"""The one canonical form of an IP and a MAC address, for every layer.

Connectors write source values in this form, the engine compares and sends it, the
client compares the API's answers in it, and the conformance suite checks it:

- an IP address is ``ipaddress``' compressed text (``2001:db8::1``, not
  ``2001:DB8:0::1``); an interface (``10.0.0.1/24``, as NetBox writes addresses) gives
  its address when ``interface=True``;
- a MAC address is lowercase colon-separated hex (``aa:bb:cc:dd:ee:ff``), whatever the
  separators (``:``, ``-``, ``.``, space or none) it came with.

Each function returns ``None`` for a value that is not an address; what that means
(a reject, or a value compared as text) is the caller's decision. The common case, a
value already canonical, is answered by one regular expression, without building an
``ipaddress`` object: a first run puts a million of them through here.
"""

from __future__ import annotations

import ipaddress
import re

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # [0-9], not \d: ASCII only
#: Canonical dotted-quad IPv4 (no leading zeros).
IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
#: A MAC address in canonical form.
MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")

_MAC_SEPARATORS = str.maketrans("", "", ":-. ")
_HEX = frozenset("0123456789abcdef")


def canonical_ip(value: str, *, interface: bool = False) -> str | None:
    """The canonical text of an IP address (surrounding blanks ignored), or ``None``.

    With ``interface``, ``address/prefix`` is accepted and gives the address."""
    if IPV4.fullmatch(value):
        return value
    text = value.strip()
    try:
        if interface and "/" in text:
            return str(ipaddress.ip_interface(text).ip)
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def canonical_mac(value: str) -> str | None:
    """A MAC address as ``aa:bb:cc:dd:ee:ff``, or ``None`` if ``value`` is not one."""
    if MAC.fullmatch(value):
        return value
    digits = value.strip().lower().translate(_MAC_SEPARATORS)
    if len(digits) != 12 or not _HEX.issuperset(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
