"""A fake NetBox 4.6 on loopback that serves the real recorded responses.

::

    with FakeNetBox() as nb:                      # the 214 recorded demo devices
        os.environ["NETBOX_TOKEN"] = nb.v2_token  # or nb.v1_token (legacy ``Token`` form)
        ...                                       # point pynetbox / the connector at nb.url
        nb.update_device(107, status="offline")   # bumps last_updated, logs the change
        nb.delete_device(114)                     # change log: action=delete, prechange_data
        nb.fail(503, path="/api/dcim/devices/", offset=100)   # one fault, then healthy
        assert [r.param("offset") for r in nb.requests_to("/api/dcim/devices/")] == [...]

A real HTTP server (``ThreadingHTTPServer``, HTTP/1.1 keep-alive) in a thread, bound
to ``127.0.0.1`` on a free port. The device list is the five recorded ``limit=50``
pages (``tests/fixtures/netbox/``, copied from a real NetBox 4.6.8) joined, with every ``http://127.0.0.1:8000``
rewritten to the fake's own address; any ``limit``/``offset`` slice of it is served
with NetBox's ``count``/``next``/``previous`` (query keys sorted, as DRF writes them).

What it honours, as NetBox 4.6 does:

- ``GET /api/`` and ``/api/status/`` (recorded body, recorded headers incl.
  ``API-Version: 4.6``, which every answer carries);
- ``GET /api/dcim/devices/``: ``limit`` (default 50, capped at ``max_page_size``;
  ``0`` = the cap), ``offset``, ``ordering``, ``fields``, ``brief`` and the filters
  ``id``, ``serial`` (case-insensitive exact, several values OR-ed, as NetBox's
  ``MultiValueCharFilter(lookup_expr="iexact")``), ``serial__empty``, ``name``
  (iexact), ``name__empty``, ``status`` (choices checked), ``site``/``tenant``/``role``/
  ``platform``/``manufacturer`` (slugs checked, 400 for an unknown one), ``*_id``,
  ``tag`` (every tag required), ``cf_<name>``, ``last_updated__gte/__gt/__lte/__lt``;
- ``GET /api/dcim/devices/<id>/`` (the recorded 404 body for an unknown id);
- ``GET /api/core/object-changes/``: ``changed_object_type``, ``changed_object_id``,
  ``action`` (several OR-ed), ``time_after``/``time_before`` (NetBox's names; there is
  no ``time__gte``), ``ordering`` (default ``-time``), ``limit``/``offset``.

Authentication is NetBox's: no ``Authorization`` -> 403 with the recorded
"credentials were not provided" body; ``Bearer`` with an unknown token -> 403 with the
recorded ``Invalid v2 token``; ``Token`` with an unknown one -> 403 ``Invalid v1 token``
(NetBox's wording for v1; not in the recordings). NetBox answers 403, not 401, because
its first authentication class is the session one. An unknown query parameter is a
400 naming it: stricter than NetBox (which ignores it), so a typo in a client shows.

The request log keeps method, path, query and the auth *scheme* only, never a token.
Faults (``fail``, ``hang``, ``drop``, ``truncate``, and ``on_request`` hooks that change
the data mid-pull) match by path prefix, ``offset`` and/or the n-th matching request,
and fire ``times`` times (``None``: always).

The fake has its own clock, starting at the newest recorded ``last_updated`` and
moving one second per edit (or by ``tick``), so timestamps are NetBox's, not the test
machine's, and tests never depend on real time.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import re
import secrets
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlencode, urlsplit

#: The recorded responses (read-only), kept in the repository so a bare clone tests.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "netbox"

#: The address the recordings were made against; rewritten to the fake's own.
RECORDED_BASE = "http://127.0.0.1:8000"

#: The five recorded ``limit=50`` pages that together hold all 214 devices.
DEVICE_PAGES: tuple[str, ...] = tuple(f"devices_limit50_offset{o}.json" for o in range(0, 250, 50))

DEVICE_STATUSES: dict[str, str] = {
    "offline": "Offline",
    "active": "Active",
    "planned": "Planned",
    "staged": "Staged",
    "failed": "Failed",
    "inventory": "Inventory",
    "decommissioning": "Decommissioning",
}

_ACTIONS: dict[str, str] = {"create": "Created", "update": "Updated", "delete": "Deleted"}
_SLUG_FILTERS: dict[str, tuple[str, ...]] = {
    "site": ("site",),
    "tenant": ("tenant",),
    "role": ("role",),
    "platform": ("platform",),
    "manufacturer": ("device_type", "manufacturer"),
}
_ID_FILTERS: dict[str, str] = {
    "site_id": "site",
    "tenant_id": "tenant",
    "role_id": "role",
    "platform_id": "platform",
    "device_type_id": "device_type",
    "rack_id": "rack",
    "location_id": "location",
}
_TIME_LOOKUPS: dict[str, Callable[[datetime, datetime], bool]] = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}
_PAGING = frozenset({"limit", "offset", "ordering", "fields", "brief"})
_CF = re.compile(r"cf_([A-Za-z0-9_]+)")
_BRIEF_DEVICE = ("id", "url", "display", "name", "description")


@functools.cache
def _recorded(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture_text(name: str, base_url: str = RECORDED_BASE) -> str:
    """A recorded file's text with the recorded address rewritten to ``base_url``."""
    return _recorded(name).replace(RECORDED_BASE, base_url.rstrip("/"))


def fixture(name: str, base_url: str = RECORDED_BASE) -> Any:
    """A recorded JSON file, parsed, with URLs rewritten to ``base_url``."""
    return json.loads(fixture_text(name, base_url))


def recorded_devices(base_url: str = RECORDED_BASE) -> list[dict[str, Any]]:
    """All 214 recorded devices, in NetBox's order, URLs rewritten to ``base_url``."""
    devices: list[dict[str, Any]] = []
    for name in DEVICE_PAGES:
        devices.extend(fixture(name, base_url)["results"])
    return devices


def netbox_time(moment: datetime) -> str:
    """``moment`` as NetBox writes timestamps: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """A NetBox timestamp (or any ISO 8601 one); naive means UTC, as NetBox assumes."""
    moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def slugify(text: str) -> str:
    """NetBox-style slug: lowercase, runs of other characters as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


#: The environment variable the tests put the fake's token in.
TOKEN_ENV = "SYNCD_TEST_NETBOX_TOKEN"

#: Retries without waiting: the attempts still count, the backoff is zero.
FAST_RETRY: dict[str, float] = {
    "attempts": 3,
    "timeout": 30,
    "wait_initial": 0,
    "wait_max": 0,
    "wait_jitter": 0,
}


def sandbox_mapping(fake: FakeNetBox) -> dict[str, Any]:
    """The policy maps that put every NetBox model onto sandbox type 3 and every tenant
    onto organization 123."""
    models = {d["device_type"]["model"] for d in fake.devices}
    tenants = {d["tenant"]["name"] for d in fake.devices if d["tenant"]}
    return {
        "type_map": dict.fromkeys(models, 3),
        "organization_map": dict.fromkeys(tenants, 123),
    }


def connector_options(fake: FakeNetBox, **options: Any) -> dict[str, Any]:
    """``netbox`` plugin options pointing at ``fake``: token from ``TOKEN_ENV``, short
    timeouts, instant retries; ``options`` override or add."""
    return {
        "url": fake.url,
        "token_env": TOKEN_ENV,
        "timeout": 2.0,
        "connect_timeout": 2.0,
        "retry": dict(FAST_RETRY),
        **options,
    }


# -- building devices ----------------------------------------------------------------------


def make_device(
    device_id: int,
    serial: str,
    name: str | None,
    *,
    base_url: str = RECORDED_BASE,
    model: str = "ISR 1111-8P",
    manufacturer: str = "Cisco",
    tenant: str | None = "Dunder-Mifflin, Inc.",
    site: str = "DM-Akron",
    location: str | None = None,
    rack: str | None = None,
    role: str = "Router",
    platform: str | None = None,
    status: str = "active",
    ip4: str | None = None,
    ip6: str | None = None,
    description: str = "",
    custom_fields: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    last_updated: str = "2026-11-27T07:52:21.661482Z",
) -> dict[str, Any]:
    """A device in NetBox 4.6's full API shape (the recorded demo router as template)."""
    api = f"{base_url.rstrip('/')}/api"
    ui = base_url.rstrip("/")
    device: dict[str, Any] = fixture("device_1_demo_router.json", base_url)
    device.update(
        {
            "id": device_id,
            "url": f"{api}/dcim/devices/{device_id}/",
            "display_url": f"{ui}/dcim/devices/{device_id}/",
            "display": name or f"{model} ({device_id})",
            "name": name,
            "serial": serial,
            "device_type": _nested(api, "dcim/device-types", model, model=model)
            | {"manufacturer": _nested(api, "dcim/manufacturers", manufacturer)},
            "role": _nested(api, "dcim/device-roles", role),
            "tenant": _nested(api, "tenancy/tenants", tenant) if tenant else None,
            "platform": _nested(api, "dcim/platforms", platform) if platform else None,
            "site": _nested(api, "dcim/sites", site),
            "location": _nested(api, "dcim/locations", location) if location else None,
            "rack": _nested(api, "dcim/racks", rack) if rack else None,
            "status": {"value": status, "label": DEVICE_STATUSES[status]},
            "primary_ip4": _ip(api, ip4, 4) if ip4 else None,
            "primary_ip6": _ip(api, ip6, 6) if ip6 else None,
            "description": description,
            "custom_fields": dict(custom_fields or {}),
            "tags": [_nested(api, "extras/tags", tag) for tag in tags],
            "created": last_updated,
            "last_updated": last_updated,
        }
    )
    device["primary_ip"] = device["primary_ip4"] or device["primary_ip6"]
    return device


def _stable_id(text: str) -> int:
    return int.from_bytes(text.encode()[:6].ljust(6, b"\0"), "big") % 9000 + 1000


def _nested(api: str, endpoint: str, label: str, **more: Any) -> dict[str, Any]:
    ident = _stable_id(f"{endpoint}:{label}")
    data: dict[str, Any] = {
        "id": ident,
        "url": f"{api}/{endpoint}/{ident}/",
        "display": label,
        "name": label,
        "slug": slugify(label),
        "description": "",
    }
    if "model" in more:
        data.pop("name")
    data.update(more)
    return data


def _ip(api: str, address: str, family: int) -> dict[str, Any]:
    ident = _stable_id(f"ip:{address}")
    return {
        "id": ident,
        "url": f"{api}/ipam/ip-addresses/{ident}/",
        "display": address,
        "family": {"value": family, "label": f"IPv{family}"},
        "address": address,
        "nat_inside": None,
        "nat_outside": [],
        "dns_name": "",
        "description": "",
    }


def serialize_for_changelog(device: Mapping[str, Any]) -> dict[str, Any]:
    """A device as NetBox's change log stores it (``prechange_data``/``postchange_data``):
    model fields, related objects as ids, choices as values, tags as names."""
    skip = {"id", "url", "display_url", "display", "created", "primary_ip", "config_context"}
    data: dict[str, Any] = {}
    for key, value in device.items():
        if key in skip or key.endswith("_count"):
            continue
        if key == "status":
            data[key] = value["value"] if isinstance(value, dict) else value
        elif key == "tags":
            data[key] = sorted(tag["name"] for tag in value)
        elif isinstance(value, dict) and "id" in value:
            data[key] = value["id"]
        else:
            data[key] = copy.deepcopy(value)
    return data


# -- the request log and faults ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request the fake received. ``auth`` is the scheme only (``Bearer``/``Token``);
    ``results`` is how many objects a list answer carried."""

    method: str
    path: str
    query: dict[str, list[str]]
    auth: str | None
    status: int
    fault: str | None = None
    results: int | None = None

    def param(self, name: str) -> str | None:
        """The (first) value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def params(self, name: str) -> list[str]:
        """Every value of query parameter ``name``."""
        return list(self.query.get(name, ()))

    @property
    def offset(self) -> int:
        """The page offset asked for (0 when absent)."""
        return int(self.param("offset") or 0)


FaultKind = Literal["status", "hang", "drop", "truncate", "hook"]


@dataclass
class Fault:
    """A fault armed on the fake: which requests it hits and what it does to them."""

    kind: FaultKind
    path: str | None = None
    offset: int | None = None
    nth: int = 1
    times: int | None = 1
    status: int = 503
    seconds: float = 30.0
    retry_after: float | None = None
    action: Callable[[], object] | None = None
    seen: int = 0
    fired: int = 0

    def hits(self, path: str, query: Mapping[str, list[str]]) -> bool:
        """Count the request if it matches; ``True`` if the fault fires on it."""
        if self.path is not None and not path.startswith(self.path):
            return False
        if self.offset is not None and int((query.get("offset") or ["0"])[0]) != self.offset:
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


# -- the fake ------------------------------------------------------------------------------


class FakeNetBox:
    """NetBox 4.6 on loopback (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        devices: Iterable[Mapping[str, Any]] | None = None,
        *,
        tokens: Iterable[str] = (),
        max_page_size: int = 1000,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.v2_token = f"nbt_{secrets.token_hex(6)}.{secrets.token_hex(20)}"
        self.v1_token = secrets.token_hex(20)
        self._tokens = {self.v2_token, self.v1_token, *tokens}
        self.max_page_size = max_page_size
        self._tls = tls
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._initial = None if devices is None else [copy.deepcopy(dict(d)) for d in devices]
        self._devices: list[dict[str, Any]] = []
        self.change_log: list[dict[str, Any]] = []
        self._log: list[SeenRequest] = []
        self._faults: list[Fault] = []
        self._change_ids = itertools.count(1)
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free loopback port and serve in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        scheme = "http"
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=self._tls[0], keyfile=self._tls[1])
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        self._server = server
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        if self._initial is None:
            self.set_devices(recorded_devices(self.url))
        else:
            self.set_devices(self._initial)
        # A short poll interval: stop() waits for it, once per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests are released."""
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the data --------------------------------------------------------------------------

    def set_devices(self, devices: Iterable[Mapping[str, Any]]) -> None:
        """Replace every device; the clock moves to the newest ``last_updated``."""
        with self._lock:
            self._devices = [copy.deepcopy(dict(d)) for d in devices]
            stamps = [parse_time(d["last_updated"]) for d in self._devices if d.get("last_updated")]
            if stamps:
                self._clock = max(self._clock, *stamps)

    @property
    def devices(self) -> list[dict[str, Any]]:
        """A copy of every device, in the fake's (NetBox's default) order."""
        with self._lock:
            return copy.deepcopy(self._devices)

    def device(self, device_id: int) -> dict[str, Any]:
        """A copy of one device; ``KeyError`` if there is none."""
        with self._lock:
            return copy.deepcopy(self._find(device_id))

    def now(self) -> datetime:
        """The fake's clock (NetBox's 'now')."""
        with self._lock:
            return self._clock

    def tick(self, seconds: float = 1.0) -> datetime:
        """Move the clock forward and return it."""
        with self._lock:
            self._clock += timedelta(seconds=seconds)
            return self._clock

    def add_device(self, device: Mapping[str, Any], *, log: bool = True) -> dict[str, Any]:
        """Add a device (stamped now) and log its creation."""
        with self._lock:
            stamp = netbox_time(self.tick())
            new = copy.deepcopy(dict(device)) | {"created": stamp, "last_updated": stamp}
            self._devices.append(new)
            if log:
                self._log_change("create", new, None, serialize_for_changelog(new))
            return copy.deepcopy(new)

    def update_device(self, device_id: int, *, log: bool = True, **changes: Any) -> dict[str, Any]:
        """Change fields of a device as a NetBox user would: ``last_updated`` moves to now
        and an ``update`` entry (with pre- and post-change data) joins the change log.
        ``status="offline"`` sets the choice; other values are set as given."""
        with self._lock:
            device = self._find(device_id)
            before = serialize_for_changelog(device)
            for key, value in changes.items():
                if key == "status":
                    device[key] = {"value": value, "label": DEVICE_STATUSES[value]}
                else:
                    device[key] = value
                if key == "name":
                    device["display"] = value or device["display"]
            device["last_updated"] = netbox_time(self.tick())
            if log:
                self._log_change("update", device, before, serialize_for_changelog(device))
            return copy.deepcopy(device)

    def delete_device(self, device_id: int, *, log: bool = True) -> dict[str, Any]:
        """Delete a device; a ``delete`` entry with its ``prechange_data`` joins the log."""
        with self._lock:
            device = self._find(device_id)
            self._devices.remove(device)
            if log:
                self.tick()
                self._log_change("delete", device, serialize_for_changelog(device), None)
            return device

    def prune_change_log(self) -> None:
        """Forget the change log (NetBox's ``CHANGELOG_RETENTION`` at work)."""
        with self._lock:
            self.change_log.clear()

    def _find(self, device_id: int) -> dict[str, Any]:
        for device in self._devices:
            if device["id"] == device_id:
                return device
        raise KeyError(f"no device {device_id} in the fake NetBox")

    def _log_change(
        self,
        action: str,
        device: Mapping[str, Any],
        pre: dict[str, Any] | None,
        post: dict[str, Any] | None,
    ) -> None:
        change_id = next(self._change_ids)
        api = f"{self.url}/api"
        self.change_log.append(
            {
                "id": change_id,
                "url": f"{api}/core/object-changes/{change_id}/",
                "display_url": f"{self.url}/core/changelog/{change_id}/",
                "display": f"{device.get('display', '')} {_ACTIONS[action].lower()} by admin",
                "time": netbox_time(self._clock),
                "user": {
                    "id": 1,
                    "url": f"{api}/users/users/1/",
                    "display": "admin",
                    "username": "admin",
                },
                "user_name": "admin",
                "request_id": str(uuid.uuid4()),
                "action": {"value": action, "label": _ACTIONS[action]},
                "changed_object_type": "dcim.device",
                "changed_object_id": device["id"],
                "changed_object": None
                if action == "delete"
                else {k: device.get(k) for k in _BRIEF_DEVICE},
                "message": "",
                "prechange_data": pre,
                "postchange_data": post,
            }
        )

    # -- the request log and faults --------------------------------------------------------

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[SeenRequest]:
        """The requests whose path is ``path``."""
        return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._log.clear()

    def inject(self, fault: Fault) -> Fault:
        """Arm ``fault`` (faults are tried in the order armed)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(
        self,
        status: int = 503,
        *,
        path: str | None = None,
        offset: int | None = None,
        nth: int = 1,
        times: int | None = 1,
        retry_after: float | None = None,
    ) -> Fault:
        """Answer matching requests with ``status`` (and a NetBox-like JSON body)."""
        return self.inject(
            Fault(
                "status",
                path=path,
                offset=offset,
                nth=nth,
                times=times,
                status=status,
                retry_after=retry_after,
            )
        )

    def hang(
        self,
        seconds: float = 30.0,
        *,
        path: str | None = None,
        offset: int | None = None,
        nth: int = 1,
        times: int | None = 1,
    ) -> Fault:
        """Answer nothing for ``seconds`` (or until the fake stops), then close."""
        return self.inject(
            Fault("hang", path=path, offset=offset, nth=nth, times=times, seconds=seconds)
        )

    def drop(
        self,
        *,
        path: str | None = None,
        offset: int | None = None,
        nth: int = 1,
        times: int | None = 1,
    ) -> Fault:
        """Close the connection without answering."""
        return self.inject(Fault("drop", path=path, offset=offset, nth=nth, times=times))

    def truncate(
        self,
        *,
        path: str | None = None,
        offset: int | None = None,
        nth: int = 1,
        times: int | None = 1,
    ) -> Fault:
        """Send the headers and half the body, then close (dropped mid-answer)."""
        return self.inject(Fault("truncate", path=path, offset=offset, nth=nth, times=times))

    def on_request(
        self,
        action: Callable[[], object],
        *,
        path: str | None = None,
        offset: int | None = None,
        nth: int = 1,
        times: int | None = 1,
    ) -> Fault:
        """Run ``action`` (say, delete a device) when a matching request arrives, then
        answer it normally: NetBox changing while a client pages through it."""
        return self.inject(
            Fault("hook", path=path, offset=offset, nth=nth, times=times, action=action)
        )

    def clear_faults(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def _fault_for(self, path: str, query: Mapping[str, list[str]]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits(path, query):
                    return fault
        return None

    def _record(self, seen: SeenRequest) -> None:
        with self._lock:
            self._log.append(seen)

    # -- answering -------------------------------------------------------------------------

    def answer(  # noqa: PLR0911 - one return per endpoint
        self, path: str, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        """Status and JSON body for an authenticated GET."""
        with self._lock:
            if path in ("/api/", "/api"):
                return 200, {
                    app: f"{self.url}/api/{app}/"
                    for app in ("circuits", "core", "dcim", "extras", "ipam", "tenancy")
                }
            if path == "/api/status/":
                return 200, fixture("status.json", self.url)
            if path == "/api/dcim/devices/":
                return self._device_list(path, query)
            match = re.fullmatch(r"/api/dcim/devices/(\d+)/", path)
            if match:
                for device in self._devices:
                    if device["id"] == int(match.group(1)):
                        return 200, copy.deepcopy(device)
                return 404, fixture("error_device_not_found.json")
            if path == "/api/core/object-changes/":
                return self._change_list(path, query)
            return 404, {"detail": "Not found."}

    def _device_list(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        try:
            selected = [d for d in self._devices if _device_matches(d, query, self._devices)]
        except _BadFilterError as exc:
            return 400, exc.body
        if "ordering" in query:
            selected = _ordered(selected, query["ordering"][0])
        if query.get("brief", ["false"])[0].lower() in ("true", "1"):
            selected = [{k: d.get(k) for k in _BRIEF_DEVICE} for d in selected]
        if "fields" in query:
            wanted = [f for f in query["fields"][0].split(",") if f]
            selected = [{k: d.get(k) for k in wanted} for d in selected]
        return self._page(path, query, selected)

    def _change_list(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        unknown = [
            k
            for k in query
            if k not in _PAGING
            and k
            not in {
                "changed_object_type",
                "changed_object_id",
                "action",
                "time_after",
                "time_before",
                "id",
            }
        ]
        if unknown:
            return 400, {"detail": f"fake NetBox: unsupported query parameter(s) {unknown}"}
        try:
            after = parse_time(query["time_after"][0]) if "time_after" in query else None
            before = parse_time(query["time_before"][0]) if "time_before" in query else None
        except ValueError:
            return 400, {"time": ["Enter a valid date/time."]}
        entries = []
        for entry in self.change_log:
            if "changed_object_type" in query and (
                entry["changed_object_type"] not in query["changed_object_type"]
            ):
                continue
            if "changed_object_id" in query and str(entry["changed_object_id"]) not in query.get(
                "changed_object_id", []
            ):
                continue
            if "id" in query and str(entry["id"]) not in query["id"]:
                continue
            if "action" in query and entry["action"]["value"] not in query["action"]:
                continue
            moment = parse_time(entry["time"])
            if (after and moment < after) or (before and moment > before):
                continue
            entries.append(entry)
        order = query.get("ordering", ["-time"])[0]
        key = order.lstrip("-")
        entries.sort(key=lambda e: (e[key], e["id"]), reverse=order.startswith("-"))
        return self._page(path, query, copy.deepcopy(entries))

    def _page(
        self, path: str, query: dict[str, list[str]], items: list[dict[str, Any]]
    ) -> tuple[int, Any]:
        try:
            limit = int(query.get("limit", ["50"])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return 400, {"detail": "limit and offset must be integers"}
        if limit <= 0 or limit > self.max_page_size:
            limit = self.max_page_size
        offset = max(offset, 0)
        count = len(items)
        base = f"{self.url}{path}"
        nxt = None
        if offset + limit < count:
            nxt = _link(base, query, limit=limit, offset=offset + limit)
        prev = None
        if offset > 0:
            prev = _link(base, query, limit=limit, offset=offset - limit if offset > limit else 0)
        return 200, {
            "count": count,
            "next": nxt,
            "previous": prev,
            "results": items[offset : offset + limit],
        }

    def authenticate(self, header: str | None) -> tuple[str | None, dict[str, str] | None]:
        """``(scheme, None)`` when the header carries a known token, else
        ``(scheme, NetBox's 403 body)``."""
        if not header:
            return None, fixture("error_no_token.json")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme == "Bearer":
            ok = token.startswith("nbt_") and token in self._tokens
            return scheme, None if ok else fixture("error_invalid_token.json")
        if scheme == "Token":
            ok = not token.startswith("nbt_") and token in self._tokens
            return scheme, None if ok else {"detail": "Invalid v1 token"}
        return scheme or None, fixture("error_no_token.json")


def _link(base: str, query: Mapping[str, list[str]], *, limit: int, offset: int) -> str:
    params = {k: list(v) for k, v in query.items()}
    params["limit"] = [str(limit)]
    if offset:
        params["offset"] = [str(offset)]
    else:
        params.pop("offset", None)
    return f"{base}?{urlencode(sorted(params.items()), doseq=True)}"


def _ordered(devices: list[dict[str, Any]], ordering: str) -> list[dict[str, Any]]:
    key = ordering.lstrip("-")

    def sort_key(device: dict[str, Any]) -> tuple[bool, Any, int]:
        value = device.get(key)
        return (value is None, value if value is not None else "", device["id"])

    return sorted(devices, key=sort_key, reverse=ordering.startswith("-"))


class _BadFilterError(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.body = body


def _choice_error(name: str, value: str) -> _BadFilterError:
    message = f"Select a valid choice. {value} is not one of the available choices."
    return _BadFilterError({name: [message]})


def _slug_of(device: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    node: Any = device
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node.get("slug") if isinstance(node, dict) else None


def _device_matches(  # noqa: PLR0911 - one branch per NetBox filter
    device: Mapping[str, Any],
    query: Mapping[str, list[str]],
    everything: Sequence[Mapping[str, Any]],
) -> bool:
    for name, values in query.items():
        if name in _PAGING:
            continue
        if name == "id":
            if str(device["id"]) not in values:
                return False
        elif name == "serial":
            wanted = {v.casefold() for v in values}
            if (device.get("serial") or "").casefold() not in wanted:
                return False
        elif name in ("serial__empty", "name__empty"):
            empty = not (device.get(name.removesuffix("__empty")) or "")
            if empty != (values[0].lower() in ("true", "1")):
                return False
        elif name == "name":
            if (device.get("name") or "").casefold() not in {v.casefold() for v in values}:
                return False
        elif name == "status":
            for value in values:
                if value not in DEVICE_STATUSES:
                    raise _choice_error(name, value)
            if device["status"]["value"] not in values:
                return False
        elif name in _SLUG_FILTERS:
            known = {_slug_of(d, _SLUG_FILTERS[name]) for d in everything}
            for value in values:
                if value not in known:
                    raise _choice_error(name, value)
            if _slug_of(device, _SLUG_FILTERS[name]) not in values:
                return False
        elif name in _ID_FILTERS:
            related = device.get(_ID_FILTERS[name])
            if not isinstance(related, dict) or str(related.get("id")) not in values:
                return False
        elif name == "tag":
            slugs = {tag["slug"] for tag in device.get("tags", ())}
            known = {tag["slug"] for d in everything for tag in d.get("tags", ())}
            for value in values:
                if value not in known:
                    raise _choice_error(name, value)
            if not set(values) <= slugs:
                return False
        elif name.startswith("last_updated__"):
            lookup = _TIME_LOOKUPS.get(name.removeprefix("last_updated__"))
            if lookup is None:
                raise _BadFilterError({"detail": f"fake NetBox: unsupported filter {name!r}"})
            try:
                bound = parse_time(values[0])
            except ValueError:
                raise _BadFilterError({name: ["Enter a valid date/time."]}) from None
            if not lookup(parse_time(device["last_updated"]), bound):
                return False
        elif match := _CF.fullmatch(name):
            field_value = (device.get("custom_fields") or {}).get(match.group(1))
            if field_value is None or str(field_value) not in values:
                return False
        else:
            raise _BadFilterError({"detail": f"fake NetBox: unsupported query parameter {name!r}"})
    return True


# -- HTTP ----------------------------------------------------------------------------------


def _handler_for(fake: FakeNetBox) -> type[BaseHTTPRequestHandler]:
    headers = _recorded_headers()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # an idle keep-alive connection does not hold its thread for ever

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Quiet: the fake keeps its own request log."""

        def do_GET(self) -> None:
            """Serve one GET (see the module docstring)."""
            split = urlsplit(self.path)
            query = parse_qs(split.query, keep_blank_values=True)
            path = split.path
            scheme, refusal = fake.authenticate(self.headers.get("Authorization"))
            fault = fake._fault_for(path, query)
            if fault is not None and fault.kind == "hook":
                if fault.action is not None:
                    fault.action()
                fault = None
            if fault is not None and fault.kind != "status":
                fake._record(SeenRequest("GET", path, query, scheme, 0, fault.kind))
                self._misbehave(fault)
                return
            if fault is not None:
                status, body = fault.status, {"detail": f"fake NetBox fault: {fault.status}"}
            elif refusal is not None:
                status, body = 403, refusal
            else:
                status, body = fake.answer(path, query)
            listed = body.get("results") if isinstance(body, dict) else None
            fake._record(
                SeenRequest(
                    "GET",
                    path,
                    query,
                    scheme,
                    status,
                    "status" if fault else None,
                    len(listed) if isinstance(listed, list) else None,
                )
            )
            extra = {}
            if fault is not None and fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            self._send(status, body, extra)

        def do_POST(self) -> None:
            """The fake is read-only."""
            self._send(405, {"detail": 'Method "POST" not allowed.'}, {})

        def _send(self, status: int, body: Any, extra: Mapping[str, str]) -> None:
            blob = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, **extra}.items():
                self.send_header(name, value)
            self.send_header("X-Request-ID", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def _misbehave(self, fault: Fault) -> None:
            if fault.kind == "hang":
                fake._stop.wait(fault.seconds)
            elif fault.kind == "truncate":
                blob = json.dumps({"count": 1, "next": None, "results": [{}] * 50}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob[: len(blob) // 2])
                self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)

    return Handler


def _recorded_headers() -> dict[str, str]:
    """The recorded ``/api/status/`` headers a NetBox answer always carries."""
    keep: dict[str, str] = {}
    lines = (FIXTURES / "status.headers.txt").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        if name.lower() in ("date", "content-length", "x-request-id", "server"):
            continue
        keep[name.strip()] = value.strip()
    return keep
