"""The API's two secrets and their checks, both constant-time.

- The **trigger token** guards ``/v1/triggers``: ``Authorization: Bearer <token>``.
- The **webhook secret** is the key NetBox signs a webhook's body with: its
  ``X-Hook-Signature`` header is the hex HMAC-SHA512 of the raw body under the secret
  (NetBox's ``generate_signature``), so it proves the sender knows the secret and that
  the body is the one it signed.

Both are registered with the log redactor when read, and neither is ever quoted back:
a refused request learns only that it was refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from pydantic import SecretStr

from syncd.config import Settings
from syncd.log import register_secret

SIGNATURE_HEADER = "X-Hook-Signature"


@dataclass(frozen=True, slots=True)
class ApiSecrets:
    """The secrets of ``[api]``, read once (``None``: not configured)."""

    trigger_token: SecretStr | None = field(default=None, repr=False)
    webhook_secret: SecretStr | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiSecrets:
        """Read both (``ConfigError`` for an unreadable, empty or too short file) and
        register them with the redactor."""
        token = settings.api.resolved_trigger_token()
        secret = settings.api.resolved_webhook_secret()
        register_secret(token)
        register_secret(secret)
        return cls(token, secret)


def bearer_matches(authorization: str | None, token: SecretStr) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a Bearer token."""
    if not authorization:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Starlette decodes headers as latin-1: back to the bytes the client sent.
    given = credentials.strip().encode("latin-1", errors="replace")
    return hmac.compare_digest(given, token.get_secret_value().encode("utf-8"))


def signature(body: bytes, secret: SecretStr) -> str:
    """The ``X-Hook-Signature`` NetBox sends with ``body``: hex HMAC-SHA512, the secret
    (UTF-8) as key."""
    key = secret.get_secret_value().encode("utf-8")
    return hmac.new(key, body, hashlib.sha512).hexdigest()


def signature_matches(body: bytes, header: str | None, secret: SecretStr) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret``."""
    if not header:
        return False
    given = header.strip().lower().encode("latin-1", errors="replace")
    return hmac.compare_digest(given, signature(body, secret).encode("ascii"))
