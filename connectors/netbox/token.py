"""Where the NetBox token comes from, and which ``Authorization`` scheme it gets.

The token is read when a pull starts, never from the configuration itself:
``token_file`` if one is named (a mounted secret), else the environment variable
named by ``token_env``. NetBox 4.5+ v2 tokens (``nbt_<key>.<secret>``) are sent as
``Authorization: Bearer nbt_…``, legacy 40-character tokens as ``Token …``; pynetbox
7.8 chooses by the same rule (:func:`auth_scheme`), so a v2 token missing its
``<key>.`` part would silently go out in the wrong form: it is refused here instead.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from connectors.netbox.config import NetBoxConfig
from syncd.errors import ConfigError, Problem
from syncd.log import register_secret

V2_PREFIX = "nbt_"


def auth_scheme(token: str) -> str:
    """``Bearer`` for a v2 token (``nbt_<key>.<secret>``), else ``Token``."""
    body = token.removeprefix(V2_PREFIX)
    return "Bearer" if token.startswith(V2_PREFIX) and "." in body else "Token"


def resolve_token(config: NetBoxConfig, *, connector: str) -> SecretStr:
    """The token, or a ``ConfigError`` saying where it was looked for (never its value)."""
    where = f"connector {connector!r}"
    if config.token_file is not None:
        location = "options.token_file"
        try:
            value = config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problem = f"cannot read {config.token_file}: {exc.strerror or exc}"
            raise ConfigError([Problem(location, problem)], source=where) from None
        if not value:
            raise ConfigError([Problem(location, f"{config.token_file} is empty")], source=where)
    else:
        location = f"environment variable {config.token_env}"
        value = os.environ.get(config.token_env, "").strip()
        if not value:
            problem = "is not set or empty (set it, or name a token_file in the options)"
            raise ConfigError([Problem(location, problem)], source=where)
    if any(c.isspace() or not c.isprintable() for c in value):
        problem = "the token contains blanks or control characters (copied with a label?)"
        raise ConfigError([Problem(location, problem)], source=where)
    if value.startswith(V2_PREFIX) and auth_scheme(value) != "Bearer":
        problem = "looks like a NetBox v2 token but is not of the form nbt_<key>.<secret>"
        raise ConfigError([Problem(location, problem)], source=where)
    register_secret(value)
    return SecretStr(value)
