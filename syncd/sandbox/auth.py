"""Bearer tokens, optionally scoped to organizations, checked the way DRF's
``TokenAuthentication`` (keyword ``Bearer``) checks them.

A token spec is ``TOKEN`` (every organization) or ``TOKEN=ORG,ORG`` (only those
organization ids). Tokens are held as ``SecretStr`` so no repr shows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr

NOT_PROVIDED = "Authentication credentials were not provided."
INVALID_TOKEN = "Invalid token."  # noqa: S105 - a message, not a password
NO_CREDENTIALS = "Invalid token header. No credentials provided."
HAS_SPACES = "Invalid token header. Token string should not contain spaces."
BAD_CHARACTERS = "Invalid token header. Token string should not contain invalid characters."
PERMISSION_DENIED = "You do not have permission to perform this action."
KEYWORD = "Bearer"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token and the organizations it may act on (``None``: all of them)."""

    token: SecretStr
    organizations: frozenset[int] | None = None

    def allows(self, org_id: int) -> bool:
        """True when this token may see and change devices of ``org_id``."""
        return self.organizations is None or org_id in self.organizations


def parse_token_spec(spec: str) -> TokenGrant:
    """``TOKEN`` or ``TOKEN=ORG,ORG``; raises ``ValueError`` for a malformed spec.

    The split is on the last ``=`` and only when what follows is a list of
    integers, so a token that itself contains ``=`` still works unscoped.
    """
    token, sep, orgs = spec.rpartition("=")
    if sep and token:
        parts = [p.strip() for p in orgs.split(",") if p.strip()]
        try:
            ids = frozenset(int(p) for p in parts)
        except ValueError:
            ids = None
        if ids:
            _check_token(token)
            return TokenGrant(SecretStr(token), ids)
    _check_token(spec)
    return TokenGrant(SecretStr(spec), None)


def _check_token(token: str) -> None:
    if not token or any(c.isspace() for c in token):
        raise ValueError("a token must be non-empty and contain no whitespace")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Either a grant, or the 401 message to answer with."""

    grant: TokenGrant | None
    error: str | None = None


class Authenticator:
    """Looks a request's ``Authorization`` header up among the known tokens."""

    def __init__(self, grants: Iterable[TokenGrant]) -> None:
        self._grants = {g.token.get_secret_value().encode(): g for g in grants}

    def authenticate(self, header: bytes | None) -> AuthResult:
        """DRF's ``TokenAuthentication.authenticate`` followed by ``IsAuthenticated``."""
        parts = (header or b"").split()
        problem = _header_problem(parts)
        if problem is not None:
            return AuthResult(None, problem)
        grant = self._grants.get(parts[1])
        if grant is None:
            return AuthResult(None, INVALID_TOKEN)
        return AuthResult(grant)


def _header_problem(parts: list[bytes]) -> str | None:
    """What is wrong with the split ``Authorization`` header, as DRF words it."""
    if not parts or parts[0].lower() != KEYWORD.lower().encode():
        # No header, or another scheme (Basic, Token ...): DRF treats it as absent.
        return NOT_PROVIDED
    if len(parts) == 1:
        return NO_CREDENTIALS
    if len(parts) > 2:
        return HAS_SPACES
    try:
        parts[1].decode()
    except UnicodeDecodeError:
        return BAD_CHARACTERS
    return None
