"""From command-line values to a running sandbox (the CLI's logic, kept out of the CLI)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
        max_body_bytes=settings.max_body_bytes,
        request_timeout=settings.request_timeout,
        request_log_path=settings.request_log,
        request_log_max=settings.request_log_max,
    )
    return options, generated


def run(settings: LaunchSettings, *, echo: Callable[[str], None]) -> None:
    """Build, bind, announce and serve until SIGINT/SIGTERM.

    ``echo`` gets the listening line (and the generated token, if any) once the
    server accepts connections.
    """
    from syncd.sandbox.app import SandboxApp
    from syncd.sandbox.server import bind_socket, serve

    options, generated = build_options(settings)
    app = SandboxApp(options)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise LaunchError("--port", f"cannot bind {settings.host}:{settings.port}: {exc}") from None
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host

    def announce() -> None:
        echo(f"syncd sandbox listening on http://{host}:{port}/api/v1")
        if generated is not None:
            echo(f"token: {generated}")

    serve(app, sock, on_started=announce, request_timeout=options.request_timeout)
