"""``GET /openapi.json``: the API described, each operation with the access it needs.

The security of each operation is not written by hand: it comes from the dependency
the route declares (``syncd.api.auth.route_access``, the same walk the role test makes),
so the document cannot disagree with what the server enforces. ``viewer`` and
``operator`` routes need the ``bearer`` scheme and name their role in
``x-syncd-role``; a webhook route needs the ``hookSignature`` header; a public route
needs nothing (``security: []``). The document itself is public: it describes the
routes and holds no data.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi

from syncd.api.auth import SIGNATURE_HEADER, public, route_access

router = APIRouter(dependencies=[Depends(public)])

SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token made by `syncd tokens add`, or the trigger token",
    },
    "hookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": "hex HMAC-SHA512 of the raw body under the webhook secret",
    },
}
#: The security requirement of each kind of access.
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "viewer": [{"bearer": []}],
    "operator": [{"bearer": []}],
    "netbox-signature": [{"hookSignature": []}],
}

_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``, every operation with its security."""
    doc = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    doc.setdefault("components", {})["securitySchemes"] = SCHEMES
    paths = doc.get("paths", {})
    for route in route_access(app):
        operations = paths.get(_CONVERTER.sub(r"{\1}", route.path), {})
        for method in route.methods:
            operation = operations.get(method.lower())
            if operation is None or len(route.declared) != 1:
                continue
            access = route.declared[0]
            operation["security"] = SECURITY[access]
            operation["x-syncd-role"] = access
    return doc


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document (made once per app)."""
    state = request.app.state
    if getattr(state, "openapi_document", None) is None:
        state.openapi_document = document(request.app)
    found: dict[str, Any] = state.openapi_document
    return found
