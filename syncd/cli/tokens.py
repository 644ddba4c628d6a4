"""``syncd tokens add|list|revoke``: the API tokens of ``syncd serve``.

``add`` prints the new token once, alone on stdout (``TOKEN=$(syncd tokens add ...)``
works), and what it is on stderr; the store keeps only its keyed hash, so a lost token
is revoked and replaced, never shown again. Roles and hashing: ``syncd.service.access``.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import DEFAULT_CONFIG, ConfigOption, console, err_console, fail, settings_from
from syncd.errors import SyncdError

if TYPE_CHECKING:  # imported where used: `syncd --help` stays light
    from syncd.service.access import Role

tokens_app = typer.Typer(
    help="API tokens of `syncd serve`: viewer (read) or operator (read and act).",
    no_args_is_help=True,
)


class RoleChoice(StrEnum):
    """The roles a token may have."""

    viewer = "viewer"
    operator = "operator"


def _name(value: str) -> str:
    from syncd.service.access import check_name

    try:
        return check_name(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@tokens_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="what the audit log calls its user", callback=_name)],
    role: Annotated[
        RoleChoice,
        typer.Option(help="viewer: read; operator: also trigger, approve, discard, retry, revert"),
    ],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Make a token NAME with a role and print it, once (the store keeps only a hash).

    Needs the same SYNCD_API__TOKEN_PEPPER (or api.token_pepper_file) as `syncd serve`.
    """
    from syncd.service.access import issue, require_pepper
    from syncd.store import Store

    settings = settings_from(config)
    try:
        pepper = require_pepper(settings.api.resolved_token_pepper())
        wanted: Role = "operator" if role is RoleChoice.operator else "viewer"
        with Store.from_settings(settings.store) as store:
            row, token = issue(store, name, wanted, pepper)
    except SyncdError as exc:
        fail(exc)
    print(token.get_secret_value())  # noqa: T201 - the one place the token is shown
    err_console.print(
        f"token {row.name!r} ({row.role}) made: it is shown once, above; syncd keeps only a "
        "hash of it. Send it as 'Authorization: Bearer <token>'.",
        highlight=False,
    )


@tokens_app.command("list")
def list_command(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print the tokens as JSON")] = False,
) -> None:
    """Every token: name, role, when made and last used, and whether it is revoked."""
    from syncd.service.access import TRIGGER_TOKEN_NAME
    from syncd.store import Store

    settings = settings_from(config)
    try:
        with Store.from_settings(settings.store) as store:
            rows = store.tokens()
        trigger = settings.api.resolved_trigger_token() is not None
    except SyncdError as exc:
        fail(exc)
    listed = [
        {
            "name": row.name,
            "role": row.role,
            "created_at": _when(row.created_at),
            "last_used_at": _when(row.last_used_at),
            "revoked_at": _when(row.revoked_at),
            "source": "store",
        }
        for row in rows
    ]
    if trigger:
        listed.append(
            {
                "name": TRIGGER_TOKEN_NAME,
                "role": "operator",
                "created_at": None,
                "last_used_at": None,
                "revoked_at": None,
                "source": "environment",
            }
        )
    if as_json:
        console.print_json(json.dumps(listed))
        return
    if not listed:
        console.print("No tokens. Make one with: syncd tokens add NAME --role viewer|operator")
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("name", "role", "made", "last used", "revoked"):
        table.add_column(column, no_wrap=True)
    for entry in listed:
        environment = entry["source"] == "environment"
        table.add_row(
            str(entry["name"]),
            str(entry["role"]),
            "(environment)" if environment else _short(entry["created_at"]),
            _short(entry["last_used_at"]) or ("-" if environment else "never"),
            _short(entry["revoked_at"]) or "-",
        )
    console.print(table)


@tokens_app.command("revoke")
def revoke_command(
    name: Annotated[str, typer.Argument(help="the token to revoke")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Revoke the token NAME: every request with it is refused from now on (its name
    stays taken, so the audit log keeps meaning one token by it)."""
    from syncd.service.access import TRIGGER_TOKEN_NAME
    from syncd.store import Store

    settings = settings_from(config)
    if name == TRIGGER_TOKEN_NAME:
        fail(
            SyncdError(
                "the trigger token is not in the store: unset SYNCD_API__TRIGGER_TOKEN (and "
                "api.trigger_token_file) and restart syncd serve"
            )
        )
    try:
        with Store.from_settings(settings.store) as store:
            row = store.revoke_token(name)
    except SyncdError as exc:
        fail(exc)
    console.print(
        f"token {row.name!r} ({row.role}) revoked at {_when(row.revoked_at)}: "
        "requests with it are refused from now on",
        highlight=False,
    )


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _short(stamp: object) -> str:
    """An ISO time as ``2026-12-07 15:21`` (UTC), for an 80-column table."""
    return str(stamp)[:16].replace("T", " ") if stamp else ""
