"""The CSV drop connector passes the connector conformance suite."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pytest

from connectors.conformance import (
    SAMPLE_DEVICES,
    ConnectorConformance,
    SampleDevice,
    Subject,
    expected_values,
)
from connectors.csv_drop import CsvDropConfig, CsvDropConnector

HEADER = [
    "Serial Number",
    "Hostname",
    "Model",
    "Tenant",
    "Status",
    "Mgmt IP",
    "MAC",
    "Site",
    "Description",
    "Firmware",
]


def write_devices(path: Path, devices: Iterable[SampleDevice]) -> None:
    """A file as a procurement export would have it: aliases, MACs in Cisco form, padding."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for d in devices:
            mac = d.mac_address.replace(":", "").upper() if d.mac_address else ""
            writer.writerow(
                [
                    f" {d.serial_number} ",
                    d.name,
                    d.device_type,
                    d.organization,
                    {True: "Up", False: "down", None: ""}[d.status],
                    d.ip_address or "",
                    mac,
                    d.location or "",
                    d.description or "",
                    d.firmware_version or "",
                ]
            )


class TestCsvDropConformance(ConnectorConformance):
    plugin = "csv_drop"

    @pytest.fixture
    def subject(self, tmp_path: Path) -> Subject:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        write_devices(inbox / "devices.csv", SAMPLE_DEVICES)
        options = {"inbox": str(inbox), "stable_seconds": 0}
        connector = CsvDropConnector("procurement", CsvDropConfig.model_validate(options))

        def redeliver() -> None:
            write_devices(inbox / "devices-reordered.csv", reversed(SAMPLE_DEVICES))

        return Subject(
            connector=connector,
            options=options,
            expected=expected_values(SAMPLE_DEVICES),
            redeliver=redeliver,
        )
