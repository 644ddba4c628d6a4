"""Who may do what over HTTP: API tokens, their roles, and checking a presented token.

Two roles, the second including the first:

- ``viewer``: read (the audit, ``/metrics``, what became of a trigger request);
- ``operator``: read and act (trigger, approve, discard, retry, revert).

**Tokens** are made by ``issue`` (``syncd tokens add``): ``syncd_`` and 43 URL-safe
characters, 256 random bits, shown once. The store keeps only the token's
HMAC-SHA256 keyed with the *pepper*, a server-side secret that is not in the database
(``SYNCD_API__TOKEN_PEPPER`` or ``api.token_pepper_file``). Why a keyed hash and not
scrypt or argon2: a slow hash protects secrets people choose, which can be guessed; a
256-bit random token cannot be guessed however fast its hash is, so a slow hash would
buy nothing and would cost tens of milliseconds of CPU on every request, which anyone
able to reach the port could spend for us. The key adds what speed takes away: without
the pepper, a stolen copy of the database cannot even be used to test a candidate.
And the hash is deterministic, so a request is checked with one indexed lookup.

**Constant time.** The trigger token (``SYNCD_API__TRIGGER_TOKEN``, which keeps working
as an operator token named ``env:trigger_token``) is compared with
``hmac.compare_digest``. A stored token is found by its hash: the lookup's timing
depends only on the HMAC of what the client sent, which it cannot steer without the
pepper; the row found is then compared with ``compare_digest`` as well.

No token is ever logged, stored, or quoted in an error; names are not secret and name
who did what.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from pydantic import SecretStr

from syncd.errors import ConfigError, Problem
from syncd.store.tokens import TokenRow

Role = Literal["viewer", "operator"]
#: The roles, weakest first: each may do what the ones before it may.
ROLES: tuple[Role, ...] = ("viewer", "operator")
#: The principal the trigger token stands for.
TRIGGER_TOKEN_NAME = "env:trigger_token"  # noqa: S105 - a name, not a secret
TOKEN_PREFIX = "syncd_"  # noqa: S105 - every token starts so
#: A token's name: what the audit log calls whoever used it.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: A token's last use is written at most this often (a write per request would queue
#: every request behind the store's writers).
TOUCH_EVERY = timedelta(minutes=1)
#: Longer credentials are not even hashed.
MAX_TOKEN_CHARS = 256


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a token's name and role."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """Whether this principal holds ``role`` (an operator is a viewer too)."""
        return ROLES.index(self.role) >= ROLES.index(role)


class TokenStore(Protocol):
    """What checking a token needs of the store (``syncd.store.Store`` fits)."""

    def token_by_hash(self, token_hash: str) -> tuple[TokenRow, str] | None: ...

    def touch_token(self, token_id: int, *, now: datetime | None = None) -> None: ...


class IssuingStore(Protocol):
    """What issuing a token needs of the store."""

    def add_token(
        self, name: str, role: str, token_hash: str, *, now: datetime | None = None
    ) -> TokenRow: ...


def check_name(name: str) -> str:
    """``name`` if it may name a token (``ValueError`` saying why not)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            "a token name is 1 to 64 letters, digits and . _ @ -, starting with a letter "
            "or digit (it names who did what in the audit log)"
        )
    return name


def require_pepper(pepper: SecretStr | None) -> SecretStr:
    """The pepper, or a ``ConfigError`` saying how to set one."""
    if pepper is None:
        raise ConfigError(
            [
                Problem(
                    "api.token_pepper",
                    "API tokens need a pepper to be hashed with: set SYNCD_API__TOKEN_PEPPER "
                    '(e.g. "$(openssl rand -hex 32)") or api.token_pepper_file, the same for '
                    "`syncd tokens` and `syncd serve`",
                )
            ],
            source="api",
        )
    return pepper


def token_hash(token: str, pepper: SecretStr) -> str:
    """What the store keeps of ``token``: hex HMAC-SHA256 keyed with the pepper."""
    key = pepper.get_secret_value().encode("utf-8")
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def new_token() -> SecretStr:
    """A fresh token: the prefix and 256 random bits."""
    return SecretStr(TOKEN_PREFIX + secrets.token_urlsafe(32))


def issue(
    store: IssuingStore,
    name: str,
    role: Role,
    pepper: SecretStr,
    *,
    now: datetime | None = None,
) -> tuple[TokenRow, SecretStr]:
    """Make a token named ``name`` with ``role``; the store keeps its hash, the caller
    shows the token once."""
    token = new_token()
    row = store.add_token(
        check_name(name), role, token_hash(token.get_secret_value(), pepper), now=now
    )
    return row, token


def authenticate(
    store: TokenStore,
    presented: str,
    *,
    pepper: SecretStr | None,
    trigger_token: SecretStr | None,
    now: datetime | None = None,
) -> Principal | None:
    """Who ``presented`` (a Bearer token) belongs to; ``None`` if nobody, or revoked."""
    given = presented.strip()
    if not given or len(given) > MAX_TOKEN_CHARS or not given.isascii():
        return None
    if trigger_token is not None and hmac.compare_digest(
        given.encode("ascii"), trigger_token.get_secret_value().encode("utf-8")
    ):
        return Principal(TRIGGER_TOKEN_NAME, "operator")
    if pepper is None:
        return None
    wanted = token_hash(given, pepper)
    found = store.token_by_hash(wanted)
    if found is None:
        return None
    row, stored = found
    if not hmac.compare_digest(stored.encode("ascii"), wanted.encode("ascii")) or not row.active:
        return None
    stamp = now if now is not None else datetime.now(UTC)
    if row.last_used_at is None or stamp - row.last_used_at >= TOUCH_EVERY:
        store.touch_token(row.id, now=stamp)
    role: Role = "operator" if row.role == "operator" else "viewer"
    return Principal(row.name, role)
