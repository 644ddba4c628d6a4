"""The dashboard's sessions and CSRF tokens: pure functions over a key and a time.

A person logs in with an API token once; from then on the browser holds a *session
cookie*, never the token. The cookie is ``<payload>.<signature>``: the payload names
the token's id in the store, when the session began and the session's CSRF token; the
signature is an HMAC-SHA256 under a key derived from the token pepper, so nobody
without the pepper can make or alter one. A session proves only "this browser logged
in with token N at time T": who N is, and whether N still holds, is read from the
store on every request (``syncd.service.access.principal_of``), so revoking a token
ends its sessions at once. A session lasts ``SESSION_LIFETIME`` at most.

CSRF: every form of a session carries the session's CSRF token (a random value held
inside the signed cookie, which scripts cannot read: HttpOnly); a POST whose field
does not equal it (compared in constant time) is refused. The login form, before any
session exists, pairs a signed random value in a short cookie with the same value in
the form (double submit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr

SESSION_COOKIE = "syncd_session"
LOGIN_COOKIE = "syncd_login"
CSRF_FIELD = "csrf"
#: How long a session lasts (then the person logs in again).
SESSION_LIFETIME = timedelta(hours=8)
#: How long a login form may wait before it is submitted.
LOGIN_LIFETIME = timedelta(minutes=30)
#: Longer cookies are not even looked at.
MAX_COOKIE_CHARS = 512


@dataclass(frozen=True, slots=True)
class Session:
    """A valid session: the token it was opened with, when, and its CSRF token."""

    token_id: int
    issued_at: int
    csrf: str


def session_key(pepper: SecretStr) -> bytes:
    """The key sessions are signed with, derived from the pepper (one secret to keep, and
    rotating the pepper ends every session along with every token)."""
    raw = pepper.get_secret_value().encode("utf-8")
    return hmac.new(raw, b"syncd dashboard sessions v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, purpose: str, payload: str) -> str:
    message = f"{purpose}:{payload}".encode("ascii")
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def _signed(key: bytes, purpose: str, value: str | None) -> str | None:
    """The payload of a signed ``value`` when its signature holds; else ``None``."""
    if not value or len(value) > MAX_COOKIE_CHARS or not value.isascii():
        return None
    payload, dot, signature = value.rpartition(".")
    if not dot or not hmac.compare_digest(signature, _sign(key, purpose, payload)):
        return None
    return payload


def open_session(key: bytes, token_id: int, *, now: datetime) -> tuple[str, Session]:
    """A new session for ``token_id``: the cookie's value, and the session."""
    session = Session(token_id, int(now.timestamp()), secrets.token_urlsafe(32))
    body = json.dumps({"t": session.token_id, "i": session.issued_at, "c": session.csrf})
    payload = _b64(body.encode("ascii"))
    return f"{payload}.{_sign(key, 'session', payload)}", session


def read_session(key: bytes, value: str | None, *, now: datetime) -> Session | None:
    """The session a cookie holds, if it is ours, intact and not expired."""
    payload = _signed(key, "session", value)
    if payload is None:
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(int(data["t"]), int(data["i"]), str(data["c"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    age = now.timestamp() - session.issued_at
    if not 0 <= age < SESSION_LIFETIME.total_seconds():
        return None
    return session


def login_nonce(key: bytes, *, now: datetime) -> tuple[str, str]:
    """A login form's CSRF pair: the cookie's value and the form field's."""
    nonce = f"{int(now.timestamp())}-{secrets.token_urlsafe(24)}"
    return f"{nonce}.{_sign(key, 'login', nonce)}", nonce


def login_nonce_matches(
    key: bytes, cookie: str | None, field: str | None, *, now: datetime
) -> bool:
    """Whether a login form's field matches its signed cookie and is fresh enough."""
    nonce = _signed(key, "login", cookie)
    if nonce is None or field is None or not hmac.compare_digest(nonce, field):
        return False
    stamp, _, _ = nonce.partition("-")
    age = now.timestamp() - int(stamp) if stamp.isdigit() else -1
    return 0 <= age < LOGIN_LIFETIME.total_seconds()


def csrf_matches(session: Session, field: str | None) -> bool:
    """Whether a form's CSRF field is its session's (constant time)."""
    if not field or not field.isascii():
        return False
    return hmac.compare_digest(field.encode("ascii"), session.csrf.encode("ascii"))


def same_origin(origin: str | None, referer: str | None, own: str) -> bool:
    """Whether a POST came from the app's own pages: its ``Origin`` (or, without one,
    its ``Referer``) must be ``own`` (``scheme://host[:port]``) when the browser sent
    either; a request that sent neither is judged by its CSRF token alone."""
    if origin is not None:
        return origin == own
    if referer is not None:
        return referer == own or referer.startswith(own + "/")
    return True
