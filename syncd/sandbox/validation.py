"""Field validation of write bodies, with Django REST Framework's rules and messages.

Each validator takes the raw JSON value and returns the clean value or raises
``FieldError`` with DRF's wording, so a 400 body reads like the real API's:
``{"type": ["Invalid pk \\"99\\" - object does not exist."], "name": ["This field is required."]}``.

DRF behaviours kept on purpose: strings are trimmed (``trim_whitespace``), numbers
given for a string field are turned into strings, ``""`` for a relation means null,
booleans accept DRF's spellings (``"true"``, ``"1"``, ``"yes"``, ``"on"`` ...), and
unknown or read-only keys in a body are ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal

from syncd.sandbox.catalogue import Catalogue

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
NOT_BLANK = "This field may not be blank."
NOT_STRING = "Not a valid string."
NOT_BOOLEAN = "Must be a valid boolean."
BAD_IP = "Enter a valid IPv4 or IPv6 address."
BAD_MAC = "Enter a valid MAC address."
NULL_CHARS = "Null characters are not allowed."
SERIAL_MISMATCH = "Does not match the serial number in the URL; a serial number cannot be changed."

_TRUE_VALUES: frozenset[object] = frozenset(
    # 1 also stands for True (equal hashes), 0 for False
    {"t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1", 1}
)
_FALSE_VALUES: frozenset[object] = frozenset(
    {"f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0", 0}
)

_MAC_PATTERNS = (
    re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"),
    re.compile(r"^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$"),
    re.compile(r"^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$"),
    re.compile(r"^[0-9A-Fa-f]{12}$"),
)

#: Maximum lengths, as a Django model would declare them.
MAX_LENGTHS: dict[str, int] = {
    "serial_number": 255,
    "name": 255,
    "location": 255,
    "description": 4000,
    "firmware_version": 100,
    "mac_address": 17,
    "ip_address": 45,
}

#: Writable fields in the order they are checked (and reported).
OPTIONAL_FIELDS: tuple[str, ...] = (
    "status",
    "ip_address",
    "mac_address",
    "location",
    "description",
    "firmware_version",
)

Mode = Literal["create", "replace", "patch"]
Errors = dict[str, list[str]]


class FieldError(ValueError):
    """One field's validation failure (the message is DRF's)."""


def clean_string(value: object, *, field: str, allow_blank: bool, allow_null: bool) -> str | None:
    """A DRF ``CharField``: numbers become strings, whitespace is trimmed."""
    if value is None:
        if allow_null:
            return None
        raise FieldError(NOT_NULL)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FieldError(NOT_STRING)
    text = str(value).strip()
    if not text:
        if allow_blank:
            return ""
        raise FieldError(NOT_BLANK)
    if "\x00" in text:
        raise FieldError(NULL_CHARS)
    limit = MAX_LENGTHS.get(field)
    if limit is not None and len(text) > limit:
        raise FieldError(f"Ensure this field has no more than {limit} characters.")
    return text


def clean_boolean(value: object) -> bool:
    """A DRF ``BooleanField`` (not nullable)."""
    if value is None:
        raise FieldError(NOT_NULL)
    try:
        if value in _TRUE_VALUES:
            return True
        if value in _FALSE_VALUES:
            return False
    except TypeError:  # unhashable (a list or an object)
        pass
    raise FieldError(NOT_BOOLEAN)


def clean_pk(value: object, known: Mapping[int, object]) -> int:
    """A DRF ``PrimaryKeyRelatedField`` against ``known`` ids."""
    if value is None or value == "":
        raise FieldError(NOT_NULL)
    kind = type(value).__name__
    if isinstance(value, bool):
        raise FieldError(f"Incorrect type. Expected pk value, received {kind}.")
    pk: int
    if isinstance(value, int):
        pk = value
    elif isinstance(value, float) and value.is_integer():
        pk = int(value)
    elif isinstance(value, str):
        try:
            pk = int(value)
        except ValueError:
            raise FieldError(f"Incorrect type. Expected pk value, received {kind}.") from None
    else:
        raise FieldError(f"Incorrect type. Expected pk value, received {kind}.")
    if pk not in known:
        raise FieldError(f'Invalid pk "{value}" - object does not exist.')
    return pk


def clean_ip(value: object) -> str | None:
    """A DRF ``IPAddressField`` (IPv4 or IPv6); blank or null clears it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(BAD_IP)
    text = value.strip()
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise FieldError(BAD_IP) from None
    if address.version == 4:
        return text  # Django keeps IPv4 as written
    # Django's ``clean_ipv6_address``: compressed, lower case, a zone (``%eth0``) dropped,
    # an IPv4-mapped address kept in its dotted form.
    v6 = ipaddress.IPv6Address(int(address))
    if v6.ipv4_mapped is not None:
        return f"::ffff:{v6.ipv4_mapped}"
    return v6.compressed


def clean_mac(value: object) -> str | None:
    """A MAC address in colon, hyphen, Cisco-dot or bare-hex form; kept as written."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(BAD_MAC)
    text = value.strip()
    if not text:
        return None
    if not any(p.match(text) for p in _MAC_PATTERNS):
        raise FieldError(BAD_MAC)
    return text


def _clean_optional(name: str, value: object) -> object:
    if name == "status":
        return clean_boolean(value)
    if name == "ip_address":
        return clean_ip(value)
    if name == "mac_address":
        return clean_mac(value)
    return clean_string(value, field=name, allow_blank=True, allow_null=True)


def _check(
    errors: Errors, out: dict[str, Any], name: str, value: object, clean: Callable[[object], object]
) -> None:
    try:
        out[name] = clean(value)
    except FieldError as exc:
        errors[name] = [str(exc)]


def validate_write(
    data: Mapping[str, Any],
    *,
    mode: Mode,
    catalogue: Catalogue,
    path_serial: str | None = None,
) -> tuple[dict[str, Any], Errors]:
    """Check a write body; returns (clean values, errors by field).

    ``create`` needs serial_number, name, type and organization. ``replace`` (PUT)
    needs name, type and organization and clears every omitted optional field, as
    the contract says: ``None`` for the nullable ones, and ``False`` for ``status``
    (its value on a create without it; a boolean has no null). ``patch`` returns
    only what was given. In ``replace``/``patch`` a ``serial_number`` equal to ``path_serial``
    is ignored and a different one is an error.
    """
    errors: Errors = {}
    out: dict[str, Any] = {}
    clean_serial = partial(clean_string, field="serial_number", allow_blank=False, allow_null=False)
    if mode == "create":
        if "serial_number" in data:
            _check(errors, out, "serial_number", data["serial_number"], clean_serial)
        else:
            errors["serial_number"] = [REQUIRED]
    elif "serial_number" in data:
        seen: dict[str, Any] = {}
        _check(errors, seen, "serial_number", data["serial_number"], clean_serial)
        if "serial_number" in seen and seen["serial_number"] != path_serial:
            errors["serial_number"] = [SERIAL_MISMATCH]

    required = mode != "patch"
    cleaners: tuple[tuple[str, Callable[[object], object]], ...] = (
        ("name", partial(clean_string, field="name", allow_blank=False, allow_null=False)),
        ("type", partial(clean_pk, known=catalogue.types)),
        ("organization", partial(clean_pk, known=catalogue.organizations)),
    )
    for name, clean in cleaners:
        if name in data:
            _check(errors, out, name, data[name], clean)
        elif required:
            errors[name] = [REQUIRED]
    for name in OPTIONAL_FIELDS:
        if name in data:
            _check(errors, out, name, data[name], partial(_clean_optional, name))
        elif mode == "replace":
            out[name] = False if name == "status" else None
    return out, errors
