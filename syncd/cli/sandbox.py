"""``syncd sandbox``: run the local implementation of the inventory API.

Prints exactly one line ``syncd sandbox listening on http://HOST:PORT/api/v1`` once
it accepts connections (with the real port when ``--port 0``), then
``token: ...`` only when it generated the token itself, and ``control token: ...``
only when it generated one (``--control`` on a non-loopback address). Tokens given
as options are never echoed. A non-loopback address also gets a warning on stderr.
See ``docs/sandbox.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_PORT = 8765
TOKENS_ENV = "SYNCD_SANDBOX_TOKENS"
CONTROL_TOKEN_ENV = "SYNCD_SANDBOX_CONTROL_TOKEN"  # noqa: S105 - a variable name
DEFAULT_MAX_BODY = 1024 * 1024


def _secret_lines(path: Path) -> list[str]:
    """The lines of a secret file, without blank lines and ``#`` comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def sandbox_command(
    *,
    host: Annotated[
        str,
        typer.Option(help="address to bind; keep it on loopback (any other address: a warning)"),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="port to bind; 0 picks a free one")
    ] = DEFAULT_PORT,
    token: Annotated[
        list[str] | None,
        typer.Option(
            "--token",
            help="accepted bearer token: TOKEN, or TOKEN=ORG,ORG to scope it to those "
            f"organization ids; repeatable; also ${TOKENS_ENV} (space-separated). "
            "Without any, one is generated and printed.",
            envvar=TOKENS_ENV,
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="read accepted tokens from this file (a secret): one spec per line, "
            "as for --token; blank lines and # comments ignored",
            show_default=False,
        ),
    ] = None,
    control: Annotated[
        bool,
        typer.Option(
            "--control",
            help="enable the /_sandbox/ control API: no auth on loopback unless "
            "--control-token is given; on any other address a control token is required "
            "(generated and printed when none is given)",
        ),
    ] = False,
    control_token: Annotated[
        str | None,
        typer.Option(
            help=f"bearer token the control API requires; also ${CONTROL_TOKEN_ENV}",
            envvar=CONTROL_TOKEN_ENV,
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    control_token_file: Annotated[
        Path | None,
        typer.Option(
            help="read the control token from this file (a secret; first non-comment line)",
            show_default=False,
        ),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            min=1, help="largest request body accepted; a larger one is answered 413 at once"
        ),
    ] = DEFAULT_MAX_BODY,
    request_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="seconds a client has to send a request head, and again its body "
            "(slower clients are disconnected; a slow body is answered 408)",
        ),
    ] = 10.0,
    seed_devices: Annotated[
        int, typer.Option(min=0, max=10_000_000, help="start with N deterministic sample devices")
    ] = 0,
    load: Annotated[
        Path | None,
        typer.Option(help="start with the devices of this JSON list (load form)"),
    ] = None,
    catalogue: Annotated[
        Path | None,
        typer.Option(help="types and organizations JSON (default: the built-in catalogue)"),
    ] = None,
    live_check_delay: Annotated[
        float, typer.Option(min=0, max=600, help="seconds an update_status=true request takes")
    ] = 0.2,
    rate_limit: Annotated[
        str | None,
        typer.Option(help="per-token limit such as 10/s or 600/min, answered with 429"),
    ] = None,
    fail_rate: Annotated[
        float, typer.Option(min=0, max=1, help="share of API requests answered --fail-status")
    ] = 0.0,
    fail_status: Annotated[
        int, typer.Option(min=400, max=599, help="status of injected failures")
    ] = 503,
    retry_after: Annotated[
        int | None,
        typer.Option(min=0, max=86_400, help="Retry-After seconds sent with injected failures"),
    ] = None,
    latency_ms: Annotated[
        float,
        typer.Option(min=0, max=600_000, help="extra delay of delayed requests, milliseconds"),
    ] = 0.0,
    latency_rate: Annotated[
        float, typer.Option(min=0, max=1, help="share of requests delayed by --latency-ms")
    ] = 1.0,
    drop_rate: Annotated[
        float, typer.Option(min=0, max=1, help="share of requests whose connection is dropped")
    ] = 0.0,
    drop_applied: Annotated[
        bool,
        typer.Option(
            "--drop-applied", help="apply a dropped request before dropping (default: not applied)"
        ),
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="random seed of the fault injection (reproducible runs)")
    ] = None,
    request_log: Annotated[
        Path | None, typer.Option(help="also append every API request to this JSON-lines file")
    ] = None,
    request_log_max: Annotated[
        int,
        typer.Option(
            min=1, max=100_000_000, help="API requests kept in memory for /_sandbox/requests"
        ),
    ] = 1_000_000,
) -> None:
    """Serve the Inventory Device Serial API from memory, for tests, demos and rehearsals."""
    from syncd.sandbox.launch import LaunchError, LaunchSettings, run

    specs = list(token or ())
    if token_file is not None:
        specs += _secret_lines(token_file)
    if control_token_file is not None:
        lines = _secret_lines(control_token_file)
        if not lines:
            raise typer.BadParameter(
                f"{control_token_file} holds no token", param_hint="--control-token-file"
            )
        control_token = lines[0]
    settings = LaunchSettings(
        host=host,
        port=port,
        tokens=tuple(specs),
        control=control,
        control_token=control_token,
        max_body_bytes=max_body_bytes,
        request_timeout=request_timeout,
        seed_devices=seed_devices,
        load=load,
        catalogue=catalogue,
        live_check_delay=live_check_delay,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        fail_status=fail_status,
        retry_after=retry_after,
        latency_ms=latency_ms,
        latency_rate=latency_rate,
        drop_rate=drop_rate,
        drop_applied=drop_applied,
        seed=seed,
        request_log=request_log,
        request_log_max=request_log_max,
    )
    try:
        run(settings, echo=typer.echo, warn=lambda text: typer.echo(text, err=True))
    except LaunchError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
