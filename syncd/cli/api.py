"""``syncd serve``: the HTTP API (``syncd.api``): triggers and the NetBox webhook.

Prints ``syncd api listening on http://HOST:PORT`` once it accepts connections (the
real port with ``--port 0``). Secrets are never printed. See ``docs/api.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import DEFAULT_CONFIG, ConfigOption, fail, settings_from
from syncd.errors import ConfigError, Problem, SyncdError

if TYPE_CHECKING:
    from syncd.config import Settings


def serve_command(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default: api.host, 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="port to listen on; 0 picks a free one (default: api.port)"
        ),
    ] = None,
) -> None:
    """Serve the HTTP API: POST /v1/triggers (an operator token) and POST
    /v1/webhooks/netbox (NetBox's signed webhooks), each queuing a run for the daemon;
    GET /metrics (a viewer token), /healthz and /readyz.

    Needs SYNCD_API__TOKEN_PEPPER (API tokens from `syncd tokens add`),
    SYNCD_API__TRIGGER_TOKEN and/or SYNCD_API__WEBHOOK_SECRET (or their _file settings).
    SIGTERM or Ctrl-C stop it once the requests in flight are answered.
    """
    settings = settings_from(config)
    try:
        _something_to_serve(settings)
        from syncd.api.server import serve

        serve(
            settings,
            host=host or settings.api.host,
            port=settings.api.port if port is None else port,
            echo=typer.echo,
        )
    except SyncdError as exc:
        fail(exc)


def _something_to_serve(settings: Settings) -> None:
    """``ConfigError`` unless a token pepper, a trigger token or a webhook secret is set
    (and readable)."""
    api = settings.api
    if (
        api.resolved_trigger_token() is None
        and api.resolved_webhook_secret() is None
        and api.resolved_token_pepper() is None
    ):
        what = (
            "nothing to serve: set SYNCD_API__TOKEN_PEPPER (or api.token_pepper_file) for "
            "API tokens (`syncd tokens add`), SYNCD_API__TRIGGER_TOKEN (or "
            "api.trigger_token_file) for /v1/triggers, SYNCD_API__WEBHOOK_SECRET (or "
            "api.webhook_secret_file) for the NetBox webhook, or several"
        )
        raise ConfigError([Problem("api", what)], source="api")
