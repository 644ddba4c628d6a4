"""What every route shares: the request body limit, reading JSON, the error shape.

Every error is ``{"detail": "<what and where>"}``; a request body that does not fit
its model adds ``errors``, one ``{"field", "message"}`` per problem. A body larger
than ``api.max_body_bytes`` is refused with 413 before it is read whole: by its
``Content-Length`` when it declares one, else as soon as the bytes received pass the
limit.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

M = TypeVar("M", bound=BaseModel)


def refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> NoReturn:
    """Answer ``status`` with ``{"detail": detail}``."""
    raise HTTPException(status_code=status, detail=detail, headers=headers)


class InvalidBodyError(Exception):
    """A JSON body that does not fit its model (answered 422 with every problem)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the request body")
        self.problems = problems


def too_large(limit: int) -> str:
    """The 413 message."""
    return f"the request body is larger than {limit} bytes (api.max_body_bytes)"


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _send_json(send, 413, {"detail": too_large(self.limit)})
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refuse(413, too_large(self.limit))
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # a malformed length is the server's (uvicorn's) to refuse
            return int(text) if text.isdigit() else None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


async def read_json(request: Request) -> Any:
    """The request body as JSON (400 if it is not JSON)."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        refuse(400, f"the request body is not JSON{where}")


def parse(model: type[M], data: Any) -> M:
    """``data`` as ``model``; ``InvalidBodyError`` naming every field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "(body)",
                "message": "unknown field (misspelt?)"
                if error["type"] == "extra_forbidden"
                else error["msg"],
            }
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidBodyError(problems) from None
