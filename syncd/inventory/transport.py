"""The httpx layer under the inventory client: bearer auth, pooling, timeouts, TLS.

Kept apart from :mod:`syncd.inventory.client` so the client reads as API calls only, and
so a test can hand the client any ``httpx.BaseTransport``.
"""

from __future__ import annotations

from collections.abc import Generator
from importlib.metadata import PackageNotFoundError, version

import httpx
from pydantic import SecretStr

from syncd.errors import ConfigError, Problem


def user_agent() -> str:
    """``syncd/<installed version>``."""
    try:
        return f"syncd/{version('syncd')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "syncd/0+unknown"


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` to each request; the token stays a
    ``SecretStr`` until the moment a request is sent, and the repr never shows it."""

    def __init__(self, token: SecretStr) -> None:
        check_token(token)
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=**********)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the header and send."""
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request


def check_token(token: SecretStr) -> None:
    """Refuse an empty token or one that cannot travel in a header.

    Caught here because the HTTP library's own complaint about an illegal header value
    would quote the value, token included.
    """
    value = token.get_secret_value()
    if not value:
        raise ConfigError([Problem("inventory token", "is empty")], source="inventory client")
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in value):
        raise ConfigError(
            [
                Problem(
                    "inventory token",
                    "contains whitespace, control or non-ASCII characters "
                    "(a stray newline from a secret file?)",
                )
            ],
            source="inventory client",
        )


def normalise_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, or a ``ConfigError`` if it is not http(s)."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigError(
            [Problem("inventory.base_url", f"not a URL: {exc}")], source="inventory client"
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            [Problem("inventory.base_url", "must be an http(s) URL such as https://host/api/v1")],
            source="inventory client",
        )
    return base_url.rstrip("/")


def display_url(base_url: str) -> str:
    """``base_url`` without any user:password part, for reprs and logs."""
    url = httpx.URL(base_url)
    return str(url.copy_with(username=None, password=None)) if url.userinfo else base_url


def build_http_client(
    *,
    base_url: str,
    token: SecretStr,
    timeout: float,
    connect_timeout: float,
    max_connections: int,
    max_keepalive_connections: int,
    verify_tls: bool,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` rooted at ``base_url`` with pooling, timeouts and bearer auth.

    ``timeout`` covers read, write and waiting for a pooled connection; ``connect_timeout``
    only the TCP/TLS connect. Redirects are not followed: the contract has none, and a
    redirect means a wrong ``base_url`` (it surfaces as a ``ProtocolError``).
    """
    return httpx.Client(
        base_url=base_url + "/",
        auth=BearerAuth(token),
        headers={"User-Agent": user_agent(), "Accept": "application/json"},
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
        ),
        verify=verify_tls,
        transport=transport,
        follow_redirects=False,
    )
