"""From command-line values to a running sandbox (the CLI's logic, kept out of the CLI).

Bound to anything but a loopback address the sandbox is reachable by other hosts:
it says so on stderr at start, and its control API (reset, bulk load, fault
injection) then always requires a control token, generated and printed when none
was given.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import SecretStr

from syncd.sandbox.asgi import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT
from syncd.sandbox.auth import TokenGrant, parse_token_spec
from syncd.sandbox.catalogue import Catalogue, CatalogueError, load_catalogue
from syncd.sandbox.faults import FaultSettings
from syncd.sandbox.loading import rows_from_load
from syncd.sandbox.seed import sample_devices
from syncd.sandbox.state import DEFAULT_LIVE_CHECK_DELAY, SandboxOptions
from syncd.sandbox.store import DeviceRow
from syncd.sandbox.throttle import parse_rate

DEFAULT_PORT = 8765


class LaunchError(ValueError):
    """A command-line value is unusable; ``option`` names it (``--token`` ...)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True, slots=True)
class LaunchSettings:
    """The command-line values, unparsed. ``tokens`` are specs: ``TOKEN`` or ``TOKEN=ORG,ORG``."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tokens: tuple[str, ...] = field(default=(), repr=False)
    control: bool = False
    control_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    seed_devices: int = 0
    load: Path | None = None
    catalogue: Path | None = None
    live_check_delay: float = DEFAULT_LIVE_CHECK_DELAY
    rate_limit: str | None = None
    fail_rate: float = 0.0
    fail_status: int = 503
    retry_after: int | None = None
    latency_ms: float = 0.0
    latency_rate: float = 1.0
    drop_rate: float = 0.0
    drop_applied: bool = False
    seed: int | None = None
    request_log: Path | None = None
    request_log_max: int = 1_000_000


def _grants(specs: tuple[str, ...]) -> tuple[list[TokenGrant], str | None]:
    grants: list[TokenGrant] = []
    for spec in specs:
        try:
            grants.append(parse_token_spec(spec))
        except ValueError as exc:
            # the message never repeats the spec: it is a secret
            raise LaunchError("--token", str(exc)) from None
    if grants:
        return grants, None
    generated = secrets.token_urlsafe(24)
    return [parse_token_spec(generated)], generated


def _control_token(settings: LaunchSettings) -> SecretStr | None:
    token = settings.control_token
    if token is None:
        return None
    if not token or any(c.isspace() for c in token):
        # the message never repeats the token: it is a secret
        raise LaunchError("--control-token", "a token must be non-empty and contain no whitespace")
    return SecretStr(token)


def _loaded_rows(path: Path | None, catalogue: Catalogue) -> list[DeviceRow]:
    if path is None:
        return []
    from syncd.sandbox.api import utc_now

    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LaunchError("--load", f"{path}: {exc}") from None
    rows, problems = rows_from_load(items, catalogue=catalogue, now=utc_now())
    if problems:
        index, errors = next(iter(problems.items()))
        raise LaunchError(
            "--load", f"{path}: {len(problems)} bad device(s); the first, item {index}: {errors}"
        )
    return rows


def build_options(settings: LaunchSettings) -> tuple[SandboxOptions, str | None]:
    """The sandbox options, and the token generated when none was given (else ``None``)."""
    grants, generated = _grants(settings.tokens)
    try:
        catalogue = load_catalogue(settings.catalogue)
    except CatalogueError as exc:
        raise LaunchError("--catalogue", str(exc)) from None
    try:
        rate = parse_rate(settings.rate_limit) if settings.rate_limit else None
    except ValueError as exc:
        raise LaunchError("--rate-limit", str(exc)) from None
    rows = _loaded_rows(settings.load, catalogue)
    loaded = {row.serial_number for row in rows}
    count = settings.seed_devices

    def initial_devices() -> Iterator[DeviceRow]:
        # made afresh on every reset, so a million sample devices are not held twice
        yield from (d for d in sample_devices(count, catalogue) if d.serial_number not in loaded)
        yield from (row.clone() for row in rows)

    options = SandboxOptions(
        grants=tuple(grants),
        catalogue=catalogue,
        initial_devices=initial_devices,
        faults=FaultSettings(
            fail_rate=settings.fail_rate,
            fail_status=settings.fail_status,
            retry_after=settings.retry_after,
            latency_ms=settings.latency_ms,
            latency_rate=settings.latency_rate,
            drop_rate=settings.drop_rate,
            drop_applied=settings.drop_applied,
            rate_limit=rate,
        ),
        live_check_delay=settings.live_check_delay,
        seed=settings.seed,
        control=settings.control,
        control_token=_control_token(settings),
        max_body_bytes=settings.max_body_bytes,
        request_timeout=settings.request_timeout,
        request_log_path=settings.request_log,
        request_log_max=settings.request_log_max,
    )
    return options, generated


def is_loopback(address: str) -> bool:
    """True for an address only this machine can reach (``127.0.0.0/8``, ``::1``)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


@dataclass(frozen=True, slots=True)
class Startup:
    """The options to serve with, and what to say: ``lines`` (stdout) and ``warnings``."""

    options: SandboxOptions
    lines: tuple[str, ...] = field(repr=False)
    warnings: tuple[str, ...]


def plan_startup(options: SandboxOptions, generated: str | None, address: str) -> Startup:
    """What a sandbox built by ``build_options`` and bound to ``address`` serves with and says.

    ``lines`` follow the listening line: the generated API token (``token: ...``)
    and, beyond loopback, the generated control token (``control token: ...``).
    """
    lines = [f"token: {generated}"] if generated is not None else []
    if is_loopback(address):
        return Startup(options, tuple(lines), ())
    warnings = [
        f"WARNING: the sandbox is bound to {address}, not a loopback address: other hosts "
        "can reach it. It is a test double; keep it on 127.0.0.1 unless you mean to share it."
    ]
    if options.control:
        if options.control_token is None:
            control_token = secrets.token_urlsafe(24)
            options = replace(options, control_token=SecretStr(control_token))
            lines.append(f"control token: {control_token}")
        warnings.append(
            "WARNING: the control API (/_sandbox/: reset, bulk load, fault injection) is "
            "reachable too; it requires the control token as 'Authorization: Bearer'."
        )
    return Startup(options, tuple(lines), tuple(warnings))


def run(
    settings: LaunchSettings,
    *,
    echo: Callable[[str], None],
    warn: Callable[[str], None],
) -> None:
    """Bind, check, announce and serve until SIGINT/SIGTERM.

    ``warn`` gets the warnings about a non-loopback address at once; ``echo`` gets
    the listening line (and the generated tokens, if any) once the server accepts
    connections.
    """
    from syncd.sandbox.app import SandboxApp
    from syncd.sandbox.server import bind_socket, serve

    options, generated = build_options(settings)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise LaunchError("--port", f"cannot bind {settings.host}:{settings.port}: {exc}") from None
    address, port = sock.getsockname()[:2]
    startup = plan_startup(options, generated, address)
    for warning in startup.warnings:
        warn(warning)
    try:
        app = SandboxApp(startup.options)  # opens the request log
    except OSError as exc:
        sock.close()
        raise LaunchError("--request-log", f"cannot open {settings.request_log}: {exc}") from None
    host = f"[{settings.host}]" if ":" in settings.host else settings.host

    def announce() -> None:
        echo(f"syncd sandbox listening on http://{host}:{port}/api/v1")
        for line in startup.lines:
            echo(line)

    serve(app, sock, on_started=announce, request_timeout=startup.options.request_timeout)
