"""syncd keeps the Inventory Device Serial API in step with where devices are recorded."""

__version__ = "0.1.0"
