"""The only code in syncd that speaks HTTP to the Inventory Device Serial API."""

from syncd.inventory.client import InventoryClient
from syncd.inventory.failures import map_failure, may_have_been_applied, parse_retry_after
from syncd.inventory.listing import Listing
from syncd.inventory.models import (
    Device,
    DeviceCreate,
    DevicePatch,
    DeviceReplace,
    DeviceType,
    ListFilters,
    Organization,
    Page,
    PendingDetails,
)

__all__ = [
    "Device",
    "DeviceCreate",
    "DevicePatch",
    "DeviceReplace",
    "DeviceType",
    "InventoryClient",
    "ListFilters",
    "Listing",
    "Organization",
    "Page",
    "PendingDetails",
    "map_failure",
    "may_have_been_applied",
    "parse_retry_after",
]
