"""The NetBox connector passes the connector conformance suite, against the fake NetBox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.conformance import (
    SAMPLE_DEVICES,
    ConnectorConformance,
    SampleDevice,
    Subject,
)
from connectors.netbox import NetBoxConfig, NetBoxConnector
from tests.fakenetbox import TOKEN_ENV, FakeNetBox, connector_options, make_device

#: SampleDevice fields NetBox has no place for: the inventory owns ``status``, and a
#: device's MAC lives on its interfaces.
NOT_IN_NETBOX = ("status", "mac_address")


def as_netbox(index: int, device: SampleDevice) -> dict[str, object]:
    """A sample device as NetBox would hold it: location as the site, firmware in a
    custom field, the IP with its prefix length (v6 as the only primary)."""
    ip4 = ip6 = None
    if device.ip_address:
        if ":" in device.ip_address:
            ip6 = f"{device.ip_address}/64"
        else:
            ip4 = f"{device.ip_address}/24"
    return make_device(
        index + 1,
        device.serial_number,
        device.name,
        model=device.device_type,
        manufacturer="Acme",
        tenant=device.organization,
        site=device.location or "Lab",
        ip4=ip4,
        ip6=ip6,
        description=device.description or "",
        custom_fields={"sw_version": device.firmware_version},
    )


class TestNetBoxConformance(ConnectorConformance):
    plugin = "netbox"

    @pytest.fixture
    def subject(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Subject]:
        with FakeNetBox([as_netbox(i, d) for i, d in enumerate(SAMPLE_DEVICES)]) as fake:
            monkeypatch.setenv(TOKEN_ENV, fake.v2_token)
            options = connector_options(fake, mapping={"firmware": "{cf_sw_version}"})
            connector = NetBoxConnector("netbox", NetBoxConfig.model_validate(options))
            expected = {
                d.serial_number: {k: v for k, v in d.values().items() if k not in NOT_IN_NETBOX}
                for d in SAMPLE_DEVICES
            }
            yield Subject(connector=connector, options=options, expected=expected)
