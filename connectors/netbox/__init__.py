"""The NetBox connector: devices recorded in NetBox become ``DeviceRecord``s.

Configured as plugin ``netbox`` (the token is never in the file: see ``token_env``)::

    [[connectors]]
    name = "netbox"
    plugin = "netbox"
    [connectors.options]
    url = "https://netbox.example.com"
    token_env = "NETBOX_TOKEN"            # or token_file = "/run/secrets/netbox"
    filters = { site = ["nyc", "zrh"], tag = "managed" }
    state_file = "/var/lib/syncd/netbox.json"
    [connectors.options.mapping]
    device_type = "{manufacturer} {model}"
    firmware = "{cf_sw_version}"

Each ``fetch()`` yields one batch, read through pynetbox with per-request retries:

- a **full pull** (``snapshot``: absences are orphan candidates) when there is no
  watermark yet, when ``full_pull_interval`` has passed, when the filters or mapping
  changed, or when forced;
- otherwise an **incremental pull** (``delta``): devices with ``last_updated`` since
  the watermark minus ``overlap``, and deletions from NetBox's change log, as
  ``delete`` records (orphans for the engine, never immediate deletions).

``targeted(device_id=…)`` / ``targeted(serial=…)`` reads one device for a webhook.
A NetBox failure (after retries) raises ``NetBoxError`` from ``items()``: nothing of
the pull is used and no mark moves. See docs/netbox.md for the operator's guide.
"""

from connectors.base import ConnectorState
from connectors.netbox.config import NetBoxConfig, NetBoxMapping
from connectors.netbox.connector import NetBoxBatch, NetBoxConnector
from connectors.netbox.errors import (
    NetBoxAuthError,
    NetBoxError,
    NetBoxRequestError,
    NetBoxUnavailableError,
)
from connectors.netbox.mapping import BLANK_SERIAL, DeviceMapper
from connectors.netbox.pull import PullStats
from connectors.netbox.state import JsonFileState, MemoryState, PullMarks
from syncd.records import CASE_COLLISION

__all__ = [
    "BLANK_SERIAL",
    "CASE_COLLISION",
    "ConnectorState",
    "DeviceMapper",
    "JsonFileState",
    "MemoryState",
    "NetBoxAuthError",
    "NetBoxBatch",
    "NetBoxConfig",
    "NetBoxConnector",
    "NetBoxError",
    "NetBoxMapping",
    "NetBoxRequestError",
    "NetBoxUnavailableError",
    "PullMarks",
    "PullStats",
]
