"""syncd's HTTP API (``syncd serve``): a face over the same service functions as the CLI.

One module per concern, each an ``APIRouter`` under ``/v1``:

- ``triggers``: ``POST /v1/triggers`` queues an on-demand run of a connector (an
  operator token); ``GET /v1/triggers/{id}`` says what became of it (a viewer token);
- ``webhooks``: ``POST /v1/webhooks/netbox[/{connector}]``, NetBox's webhooks, signed
  with the webhook secret (``X-Hook-Signature``), each device event a targeted run;
- ``metrics``: ``GET /metrics``, Prometheus's text format (a viewer token);
- ``health``: ``GET /healthz`` and ``GET /readyz`` (public).

``create_app(settings)`` builds the app (``app``), ``serve`` runs it (``server``).
Shared pieces: who may call what, one dependency per role (``auth``), the request
body limit and the error shape (``http``). See ``docs/api.md``.
"""

from __future__ import annotations

from syncd.api.app import create_app

__all__ = ["create_app"]
