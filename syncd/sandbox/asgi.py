"""The few ASGI pieces the sandbox needs: read a request, send or drop a response.

The sandbox speaks raw ASGI rather than through a framework's router because the
contract needs the path as sent: a serial may contain ``%2F`` or ``%20``, and only
``raw_path`` keeps them apart from real separators.

A request's body is read only once the head has shown the request worth it (a valid
token, a known control route; an unauthenticated request never costs a body read),
counted as it arrives and cut off with 413 once it passes the limit: a hostile
client cannot make the sandbox buffer more than ``--max-body-bytes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from syncd.sandbox.render import dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


#: The largest request body accepted by default (``--max-body-bytes``).
DEFAULT_MAX_BODY = 1024 * 1024
#: Seconds a client has to send a request head, and again its body (``--request-timeout``).
DEFAULT_REQUEST_TIMEOUT = 10.0
#: The longest path plus query string answered; gunicorn's request-line limit is 4094.
MAX_URL_LENGTH = 4096


class ClientGone(Exception):  # noqa: N818 - a condition, not an error of ours
    """The client disconnected before its request body arrived."""


class DroppedConnection(Exception):  # noqa: N818 - raised on purpose, see ``drop``
    """Raised after a response head to make the server close the connection (a fault)."""


@dataclass(slots=True)
class Response:
    """A response to send; ``applied_write`` says whether a write changed the store.

    ``close`` asks the server to close the connection after it (``Connection: close``).
    """

    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    applied_write: bool = False
    close: bool = False


class BodyRefused(Exception):  # noqa: N818 - an answer, not a failure of ours
    """The body will not be read: too large (413) or too slow (408); ``response`` says so."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True, slots=True)
class Limits:
    """What a request may cost: body bytes, and seconds to send the body."""

    max_body: int = DEFAULT_MAX_BODY
    timeout: float = DEFAULT_REQUEST_TIMEOUT


@dataclass(slots=True)
class Request:
    """An HTTP request; its body is read only when asked for (``read_body``), once.

    A refusal decided without the body (401, 413 ...) never costs a body read: the
    server then discards what the client still sends (see ``server.py``).
    """

    method: str
    raw_path: str
    query_string: str
    headers: dict[str, bytes]
    scheme: str
    host: str
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    limits: Limits = field(default_factory=Limits)
    #: The ASGI ``receive`` until the body has been read, then ``None``.
    receive: Receive | None = field(default=None, repr=False)
    #: The 413/408 answer, once reading the body failed (a second read gives it again).
    body_refusal: Response | None = None

    def url(self) -> str:
        """The absolute URL as the client asked for it (Django's ``build_absolute_uri``)."""
        query = f"?{self.query_string}" if self.query_string else ""
        return f"{self.scheme}://{self.host}{self.raw_path}{query}"

    def declares_body(self) -> bool:
        """True when the head announces a body (a ``Content-Length`` above 0, or chunks)."""
        return bool(self.declared_length()) or "transfer-encoding" in self.headers

    def declared_length(self) -> int | None:
        """The ``Content-Length`` (already checked by the HTTP parser), if any."""
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.strip().isdigit() else None

    def early_refusal(self) -> Response | None:
        """414 for an over-long URL, 413 for a declared body over the limit; else ``None``.

        Decided from the head alone, before anything else (faults, authentication):
        as a front server such as nginx would.
        """
        url_length = len(self.raw_path) + len(self.query_string)
        if url_length > MAX_URL_LENGTH:
            message = f"Request-URI Too Long: {url_length} characters (at most {MAX_URL_LENGTH})."
            return json_response(414, {"detail": message})
        declared = self.declared_length()
        if declared is not None and declared > self.limits.max_body:
            return _too_large(self.limits.max_body, declared=declared)
        return None

    async def read_body(self) -> bytes:
        """The whole body, counted as it arrives and never held beyond the limit.

        Raises ``BodyRefused`` (413 as soon as the bytes pass ``limits.max_body``, 408
        when the body takes longer than ``limits.timeout``) or ``ClientGone``.
        """
        if self.body_refusal is not None:
            raise BodyRefused(self.body_refusal)
        if self.receive is None:
            return self.body
        receive, limits = self.receive, self.limits
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(limits.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limits.max_body:
                        self.body_refusal = _too_large(limits.max_body)
                        raise BodyRefused(self.body_refusal)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            message_text = f"Request body not received within {limits.timeout:g} s."
            self.body_refusal = json_response(408, {"detail": message_text})
            self.body_refusal.close = True  # a client this slow is not worth waiting for
            raise BodyRefused(self.body_refusal) from None
        self.receive = None
        self.body = b"".join(chunks)
        return self.body


def _too_large(limit: int, *, declared: int | None = None) -> Response:
    what = "" if declared is None else f"Content-Length {declared} is "
    return json_response(
        413, {"detail": f"Request body too large: {what}over the limit of {limit} bytes."}
    )


def json_response(
    status: int, data: object, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    """A JSON response (``data`` ``None`` gives an empty body without a content type)."""
    all_headers = list(headers or [])
    if data is None:
        return Response(status, b"", all_headers)
    all_headers.append((b"content-type", b"application/json"))
    return Response(status, dumps(data), all_headers)


def read_head(scope: Scope, receive: Receive, limits: Limits) -> Request:
    """The request as far as its head tells; the body waits for ``Request.read_body``."""
    headers: dict[str, bytes] = {}
    for name, value in scope["headers"]:
        headers[name.decode("latin-1").lower()] = value
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query_string = scope.get("query_string", b"").decode("latin-1")
    host = headers.get("host", b"").decode("latin-1")
    if not host:
        name, port = scope.get("server") or ("127.0.0.1", 80)
        host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    return Request(
        method=scope["method"].upper(),
        raw_path=raw_path,
        query_string=query_string,
        headers=headers,
        scheme=scope.get("scheme", "http"),
        host=host,
        # Django's QueryDict: a repeated parameter counts with its last value
        params=dict(parse_qsl(query_string, keep_blank_values=True)),
        limits=limits,
        receive=receive,
    )


async def body_or_refusal(req: Request) -> tuple[bytes, Response | None]:
    """``read_body`` with a 413/408 refusal returned instead of raised."""
    try:
        return await req.read_body(), None
    except BodyRefused as exc:
        return b"", exc.response


async def send_response(send: Send, response: Response) -> None:
    """Send a complete response."""
    headers = response.headers
    if response.close:
        headers = [*headers, (b"connection", b"close")]
    if response.status not in (204, 304):
        headers = [*headers, (b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


async def drop(send: Send, response: Response) -> None:
    """Send the head of ``response`` and part of its body, then break the connection.

    Raising after ``http.response.start`` makes uvicorn close the transport: the
    client sees a response cut short (httpx: ``RemoteProtocolError``). A 204 or 304
    cannot have a body to cut, so its head says 200 instead: the client never gets
    to see the status of an answer it cannot finish reading anyway.
    """
    body = response.body or b"{}"
    status = 200 if response.status in (204, 304) else response.status
    headers = [(k, v) for k, v in response.headers if k != b"content-type"]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body) + 64).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise DroppedConnection
