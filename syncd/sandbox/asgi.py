"""The few ASGI pieces the sandbox needs: read a request, send or drop a response.

The sandbox speaks raw ASGI rather than through a framework's router because the
contract needs the path as sent: a serial may contain ``%2F`` or ``%20``, and only
``raw_path`` keeps them apart from real separators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from syncd.sandbox.render import dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):  # noqa: N818 - a condition, not an error of ours
    """The client disconnected before its request body arrived."""


class DroppedConnection(Exception):  # noqa: N818 - raised on purpose, see ``drop``
    """Raised after a response head to make the server close the connection (a fault)."""


@dataclass(slots=True)
class Request:
    """An HTTP request, read completely."""

    method: str
    raw_path: str
    query_string: str
    headers: dict[str, bytes]
    body: bytes
    scheme: str
    host: str
    params: dict[str, str] = field(default_factory=dict)

    def url(self) -> str:
        """The absolute URL as the client asked for it (Django's ``build_absolute_uri``)."""
        query = f"?{self.query_string}" if self.query_string else ""
        return f"{self.scheme}://{self.host}{self.raw_path}{query}"


@dataclass(slots=True)
class Response:
    """A response to send; ``applied_write`` says whether a write changed the store."""

    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    applied_write: bool = False


def json_response(
    status: int, data: object, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    """A JSON response (``data`` ``None`` gives an empty body without a content type)."""
    all_headers = list(headers or [])
    if data is None:
        return Response(status, b"", all_headers)
    all_headers.append((b"content-type", b"application/json"))
    return Response(status, dumps(data), all_headers)


async def read_request(scope: Scope, receive: Receive) -> Request:
    """Read the whole request; raises ``ClientGone`` if the client leaves first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    headers: dict[str, bytes] = {}
    for name, value in scope["headers"]:
        headers[name.decode("latin-1").lower()] = value
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query_string = scope.get("query_string", b"").decode("latin-1")
    host = headers.get("host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return Request(
        method=scope["method"].upper(),
        raw_path=raw_path,
        query_string=query_string,
        headers=headers,
        body=b"".join(chunks),
        scheme=scope.get("scheme", "http"),
        host=host,
        # Django's QueryDict: a repeated parameter counts with its last value
        params=dict(parse_qsl(query_string, keep_blank_values=True)),
    )


async def send_response(send: Send, response: Response) -> None:
    """Send a complete response."""
    headers = response.headers
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
