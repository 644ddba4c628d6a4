"""The ``/api/v1`` face of the sandbox: the Inventory Device Serial contract.

A request goes through the steps a DRF view takes, in DRF's order:
``Host`` check (400, as Django's ``get_host``), URL resolution (404 / 301 to the
slash-terminated URL), authentication (401), throttling (429), method check (405),
then the handler. Handlers look the device up first (404), check the token's
organization scope (403), then parse and validate the body (413 / 408 when it
could not be read; 415 / 400), then apply (409 on an existing serial). A request
without a valid token never has its body read (see ``app.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from syncd.sandbox.asgi import Request, Response, body_or_refusal, json_response
from syncd.sandbox.auth import PERMISSION_DENIED, Authenticator, TokenGrant
from syncd.sandbox.bodies import MAX_FORM_FIELDS, BodyError, check_text, parse_json
from syncd.sandbox.query import (
    ParamError,
    page_limit,
    page_links,
    page_offset,
    parse_bool_param,
    parse_datetime_param,
    parse_int_param,
)
from syncd.sandbox.render import detail, list_item
from syncd.sandbox.state import SandboxState
from syncd.sandbox.store import DeviceFilter, DeviceRow
from syncd.sandbox.throttle import retry_after_seconds, throttle_message
from syncd.sandbox.validation import Errors, validate_write

API_PREFIX = "/api/v1/"
#: The API root without its slash: redirected like every other slash-less API path.
API_ROOT = API_PREFIX.rstrip("/")
COLLECTION = "inventory_device_serial"
NOT_FOUND = "Not found."
ALREADY_EXISTS = "A device with this serial number already exists."

_ALLOW = {
    "root": ("GET", "HEAD", "OPTIONS"),
    "list": ("GET", "POST", "HEAD", "OPTIONS"),
    "detail": ("GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"),
}
_NAMES = {
    "root": "Api Root",
    "list": "Inventory Device Serial List",
    "detail": "Inventory Device Serial Instance",
}

Clock = Callable[[], datetime]
T = TypeVar("T")

# A host name (underscores allowed, unlike Django: container names have them) or a
# bracketed IPv6 address, then an optional port.
_HOST = re.compile(r"^(?P<name>[A-Za-z0-9._~-]+|\[(?P<ip6>[0-9A-Fa-f:.]+)\])(?::\d{1,5})?$")


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot go into the links the API builds (``None``: it can)."""
    match = _HOST.match(host)
    if match is not None and match["ip6"] is not None:
        try:
            ipaddress.IPv6Address(match["ip6"])
        except ValueError:
            match = None
    if match is not None:
        return None
    shown = host if len(host) <= 100 else f"{host[:100]}..."
    return f"Invalid Host header: {shown!r}."


def utc_now() -> datetime:
    """The sandbox's clock."""
    return datetime.now(UTC)


def _detail(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return json_response(status, {"detail": message}, headers)


def _field_errors(errors: Errors | dict[str, list[str]]) -> Response:
    return json_response(400, errors)


def _describe(kind: str, method: str, req: Request) -> Response:
    """OPTIONS metadata of any endpoint, or the API root's endpoint map."""
    if method == "OPTIONS":
        return json_response(
            200,
            {
                "name": _NAMES[kind],
                "description": "",
                "renders": ["application/json"],
                "parses": ["application/json", "application/x-www-form-urlencoded"],
            },
        )
    base = f"{req.scheme}://{req.host}{API_PREFIX}"
    return json_response(200, {COLLECTION: f"{base}{COLLECTION}/"})


def resolve(raw_path: str) -> tuple[str, str | None]:
    """``(kind, serial)`` for a path under ``/api/v1/``.

    kind is ``root``, ``list``, ``detail``, ``redirect`` (no trailing slash, ``/api/v1``
    included: Django's ``APPEND_SLASH``) or ``missing``. The serial is the percent-decoded
    rest of the path, so ``a%2Fb`` (and even an unencoded ``a/b``) is the serial ``a/b``.
    """
    rest = raw_path[len(API_PREFIX) :]
    if raw_path == API_ROOT or rest == COLLECTION:
        return "redirect", None
    if rest == "":
        return "root", None
    if rest == f"{COLLECTION}/":
        return "list", None
    if rest.startswith(f"{COLLECTION}/"):
        tail = rest[len(COLLECTION) + 1 :]
        if not tail.endswith("/"):
            return "redirect", None
        serial = unquote(tail[:-1])
        return ("detail", serial) if serial else ("missing", None)
    return "missing", None


def _before_auth(req: Request, kind: str) -> Response | None:
    """Django's answers before a view runs: a bad ``Host`` (400), 404, ``APPEND_SLASH``."""
    bad_host = host_problem(req.host)
    if bad_host is not None:
        return _detail(400, bad_host)
    if kind == "missing":
        return _detail(404, NOT_FOUND)
    if kind == "redirect":
        query = f"?{req.query_string}" if req.query_string else ""
        return Response(301, b"", [(b"location", f"{req.raw_path}/{query}".encode())])
    return None


class InventoryApi:
    """Handles one API request against the sandbox state."""

    def __init__(self, state: SandboxState, *, clock: Clock = utc_now) -> None:
        self.state = state
        self.clock = clock
        self.auth = Authenticator(state.options.grants)

    def knows_token(self, req: Request) -> bool:
        """True when ``req`` carries a valid token (decided from its head alone)."""
        return self.auth.authenticate(req.headers.get("authorization")).grant is not None

    async def handle(self, req: Request) -> Response:
        """The answer to ``req`` (any path under ``/api/v1/``)."""
        kind, serial = resolve(req.raw_path)
        refusal = _before_auth(req, kind)
        if refusal is not None:
            return refusal
        allow = _ALLOW[kind]
        common = [(b"allow", ", ".join(allow).encode()), (b"vary", b"Accept")]
        auth = self.auth.authenticate(req.headers.get("authorization"))
        if auth.grant is None:
            return _detail(401, auth.error or "", [*common, (b"www-authenticate", b"Bearer")])
        grant = auth.grant
        limiter = self.state.limiter
        if limiter is not None:
            wait = limiter.check(grant.token.get_secret_value(), time.monotonic())
            if wait is not None:
                retry = str(retry_after_seconds(wait)).encode()
                return _detail(429, throttle_message(wait), [*common, (b"retry-after", retry)])
        method = "GET" if req.method == "HEAD" else req.method
        if method not in allow:
            return _detail(405, f'Method "{req.method}" not allowed.', common)
        response = await self._dispatch(kind, method, serial, req, grant)
        response.headers.extend(common)
        return response

    async def _dispatch(
        self, kind: str, method: str, serial: str | None, req: Request, grant: TokenGrant
    ) -> Response:
        if method == "OPTIONS" or kind == "root":
            return _describe(kind, method, req)
        if kind == "list":
            if method == "POST":
                return await self._create(req, grant)
            return await self._list(req, grant)
        assert serial is not None
        if method == "GET":
            return await self._retrieve(serial, req, grant)
        if method == "DELETE":
            return self._destroy(serial, grant)
        return await self._update(serial, req, grant, partial=method == "PATCH")

    # -- reads ---------------------------------------------------------------------------

    async def _list(self, req: Request, grant: TokenGrant) -> Response:
        params = req.params
        errors: dict[str, list[str]] = {}
        type_id = _param(params, "type", parse_int_param, errors)
        org_id = _param(params, "organization", parse_int_param, errors)
        status = _param(params, "status", parse_bool_param, errors)
        changed_from = _param(params, "last_status_change_from", parse_datetime_param, errors)
        _param(params, "pending", parse_bool_param, errors)
        update_status = _param(params, "update_status", parse_bool_param, errors)
        if errors:
            return _field_errors(errors)
        if org_id is not None and not grant.allows(org_id):
            return _detail(403, PERMISSION_DENIED)
        if update_status:
            await self._live_check(grant)
        store = self.state.store
        selection = store.select(
            DeviceFilter(
                type_id=type_id,
                org_id=org_id,
                status=status,
                changed_from=changed_from,
                org_scope=grant.organizations,
            )
        )
        hidden = self.state.faults.hide_from_list
        if hidden:
            selection = [row for row in selection if row.serial_number not in hidden]
        limit, offset = page_limit(params), page_offset(params)
        count = len(selection)
        catalogue = self.state.catalogue
        results = [list_item(row, catalogue) for row in selection[offset : offset + limit]]
        links = page_links(req.url(), count=count, limit=limit, offset=offset)
        return json_response(
            200,
            {"count": count, "next": links.next, "previous": links.previous, "results": results},
        )

    async def _retrieve(self, serial: str, req: Request, grant: TokenGrant) -> Response:
        row, refusal = self._device(serial, grant)
        if refusal is not None:
            return refusal
        errors: dict[str, list[str]] = {}
        pending = _param(req.params, "pending", parse_bool_param, errors)
        update_status = _param(req.params, "update_status", parse_bool_param, errors)
        if errors:
            return _field_errors(errors)
        if update_status:
            await asyncio.sleep(self.state.options.live_check_delay)
            # the device may have gone while the check ran
            row, refusal = self._device(serial, grant)
            if refusal is not None:
                return refusal
            assert row is not None
            if self._apply_live(row):
                self.state.store.changed()
        assert row is not None
        return json_response(200, detail(row, self.state.catalogue, pending=bool(pending)))

    async def _live_check(self, grant: TokenGrant) -> None:
        """The slow live status check of the list endpoint: every device in scope."""
        await asyncio.sleep(self.state.options.live_check_delay)
        store = self.state.store
        flipped = [
            row for row in store.live_rows() if grant.allows(row.org_id) and self._apply_live(row)
        ]
        if flipped:
            store.changed()

    def _apply_live(self, row: DeviceRow) -> bool:
        """Bring ``row.status`` to its simulated live status; True if it flipped."""
        if row.live_status is None or row.live_status == row.status:
            return False
        now = self.clock()
        row.status = row.live_status
        row.last_status_change = now
        row.updated_at = now
        return True

    # -- writes --------------------------------------------------------------------------

    async def _create(self, req: Request, grant: TokenGrant) -> Response:
        data, refusal = await read_data(req)
        if refusal is not None:
            return refusal
        values, errors = validate_write(data, mode="create", catalogue=self.state.catalogue)
        if errors:
            return _field_errors(errors)
        if not grant.allows(values["organization"]):
            return _detail(403, PERMISSION_DENIED)
        store = self.state.store
        if values["serial_number"] in store:
            return _detail(409, ALREADY_EXISTS)
        now = self.clock()
        row = DeviceRow(
            serial_number=values["serial_number"],
            name=values["name"],
            type_id=values["type"],
            org_id=values["organization"],
            created_at=now,
            updated_at=now,
            status=values.get("status", False),
            last_status_change=now if "status" in values else None,
            ip_address=values.get("ip_address"),
            mac_address=values.get("mac_address"),
            location=values.get("location"),
            description=values.get("description"),
            firmware_version=values.get("firmware_version"),
        )
        store.add(row)
        response = json_response(201, list_item(row, self.state.catalogue))
        response.applied_write = True
        return response

    async def _update(
        self, serial: str, req: Request, grant: TokenGrant, *, partial: bool
    ) -> Response:
        _, refusal = self._device(serial, grant)
        if refusal is not None:
            return refusal
        data, refusal = await read_data(req)
        if refusal is not None:
            return refusal
        # looked up again: the device may have gone while the body arrived
        row, refusal = self._device(serial, grant)
        if refusal is not None:
            return refusal
        assert row is not None
        values, errors = validate_write(
            data,
            mode="patch" if partial else "replace",
            catalogue=self.state.catalogue,
            path_serial=serial,
        )
        if errors:
            return _field_errors(errors)
        if "organization" in values and not grant.allows(values["organization"]):
            return _detail(403, PERMISSION_DENIED)
        now = self.clock()
        for name, value in values.items():
            if name == "type":
                row.type_id = value
            elif name == "organization":
                row.org_id = value
            elif name == "status":
                if value != row.status:
                    row.last_status_change = now
                row.status = value
            else:
                setattr(row, name, value)
        row.updated_at = now
        self.state.store.changed()
        response = json_response(200, list_item(row, self.state.catalogue))
        response.applied_write = True
        return response

    def _destroy(self, serial: str, grant: TokenGrant) -> Response:
        _, refusal = self._device(serial, grant)
        if refusal is not None:
            return refusal
        self.state.store.delete(serial)
        response = json_response(204, None)
        response.applied_write = True
        return response

    def _device(self, serial: str, grant: TokenGrant) -> tuple[DeviceRow | None, Response | None]:
        row = self.state.store.get(serial)
        if row is None:
            return None, _detail(404, NOT_FOUND)
        if not grant.allows(row.org_id):
            return None, _detail(403, PERMISSION_DENIED)
        return row, None


def _param(
    params: dict[str, str], name: str, parse: Callable[[str], T], errors: dict[str, list[str]]
) -> T | None:
    """A query parameter parsed, ``None`` when absent; errors collected by name.

    An empty value (``?status=``) is a value like any other and must be valid: the
    contract says "anything else -> 400", and a client that sends an empty filter by
    mistake should learn it here rather than get every device back.
    """
    value = params.get(name)
    if value is None:
        return None
    try:
        return parse(value)
    except ParamError as exc:
        errors[name] = [str(exc)]
        return None


def _charset(options: str) -> str:
    """The body's charset; an unknown one is ignored, as Django's request does.

    So is a codec that is not a text encoding (``rot13``, ``zlib``): decoding with it
    would fail with a ``LookupError``, not a clean 400.
    """
    for option in options.split(";"):
        key, _, value = option.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
            try:
                b"x".decode(charset)  # not b"": decoding nothing skips the codec lookup
            except LookupError:
                break
            except ValueError:
                pass  # a text codec that needs more than one byte (utf-16)
            return charset
    return "utf-8"


async def read_data(req: Request) -> tuple[dict[str, Any], Response | None]:
    """The request body read (413 / 408 when it cannot be) and parsed (``parse_body``)."""
    body, refusal = await body_or_refusal(req)
    if refusal is not None:
        return {}, refusal
    return parse_body(req, body)


def parse_body(req: Request, body: bytes) -> tuple[dict[str, Any], Response | None]:
    """``body`` as a dict, DRF's parsers' way (JSON and form; else 415).

    Whatever the bytes, the answer is a dict or a 400/415, never an exception.
    """
    if not body:
        return {}, None
    content_type = req.headers.get("content-type", b"").decode("latin-1")
    media, _, options = content_type.partition(";")
    media = media.strip().lower()
    if media not in ("application/json", "application/x-www-form-urlencoded"):
        return {}, _detail(415, f'Unsupported media type "{content_type}" in request.')
    is_json = media == "application/json"
    data: object
    try:
        text = body.decode(_charset(options))
        if is_json:
            data = parse_json(text)
        else:
            check_text(text)
            data = dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError as exc:  # BodyError, UnicodeDecodeError, too many form fields
        if not is_json and not isinstance(exc, (BodyError, UnicodeDecodeError)):
            exc = BodyError(f"More than {MAX_FORM_FIELDS} fields.")
        kind = "JSON" if is_json else "Form"
        return {}, _detail(400, f"{kind} parse error - {exc}")
    if data is None:
        # DRF's serializer turns its "may not be null" for a whole body into this
        return {}, json_response(400, {"non_field_errors": ["No data provided"]})
    if not isinstance(data, dict):
        kind = type(data).__name__
        message = f"Invalid data. Expected a dictionary, but got {kind}."
        return {}, json_response(400, {"non_field_errors": [message]})
    return data, None
