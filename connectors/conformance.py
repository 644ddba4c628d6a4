"""The conformance suite every connector must pass (pytest).

A connector's test module subclasses ``ConnectorConformance``, names its plugin and
provides a ``subject`` fixture: a connector whose source holds a known set of
devices (``SAMPLE_DEVICES`` is a ready-made set)::

    from connectors.conformance import SAMPLE_DEVICES, ConnectorConformance, Subject

    class TestCsvDropConformance(ConnectorConformance):
        plugin = "csv_drop"

        @pytest.fixture
        def subject(self, tmp_path: Path) -> Subject:
            ...  # put SAMPLE_DEVICES into the source
            return Subject(connector, options, expected=expected_values(SAMPLE_DEVICES))

The suite checks what the engine relies on: the plugin is registered and its
``Config`` forbids unknown options; ``fetch()`` yields ``Batch``es whose items are
well-formed ``DeviceRecord``s and ``Reject``s carrying the connector's name and an
origin; values are normalised (trimmed text, compressed IPs, ``aa:bb:..`` MACs,
boolean status); the verdict's counts match the items; the records say what the
source holds; a fetch after commit brings nothing new; the same devices delivered
again hash the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from connectors.base import (
    Batch,
    Connector,
    Item,
    available_plugins,
    build_connector,
    load_plugin,
)
from syncd.canonical import canonical_ip, canonical_mac
from syncd.errors import ConfigError
from syncd.records import IDENTIFIER, RECORD_FIELDS, DeviceRecord, Reject

_TEXT_FIELDS = ("name", "location", "description", "firmware_version")


@dataclass(frozen=True, slots=True)
class SampleDevice:
    """A device a test puts into a connector's source."""

    serial_number: str
    name: str
    device_type: str
    organization: str
    status: bool | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    location: str | None = None
    description: str | None = None
    firmware_version: str | None = None

    def values(self) -> dict[str, object]:
        """The fields set (``None`` left out), as a record carrying them would report."""
        return {
            name: getattr(self, name) for name in RECORD_FIELDS if getattr(self, name) is not None
        }


# The sample's fields are the record's, as ``syncd.records`` declares them: never a list
# of its own that could drift.
if tuple(SampleDevice.__dataclass_fields__) != (IDENTIFIER, *RECORD_FIELDS):  # pragma: no cover
    raise TypeError("SampleDevice must have the fields syncd.records.ATTRIBUTES declares")


#: A small source with the awkward but valid cases: non-ASCII text, IPv6, serials that
#: differ only by case (two devices for a case-sensitive API), a device with few fields.
SAMPLE_DEVICES: tuple[SampleDevice, ...] = (
    SampleDevice(
        "FDO2231X0AB",
        "zrh-core-01",
        "C9300-48P",
        "acme",
        status=True,
        ip_address="10.20.0.1",
        mac_address="00:1b:54:aa:01:02",
        location="Zürich, Halle 3",
        firmware_version="17.9.4",
    ),
    SampleDevice(
        "JPE42634115",
        "gva-fw-01",
        "PA-3220",
        "acme",
        status=False,
        ip_address="2001:db8::10",
        description='Perimeter firewall; HA pair "A"',
    ),
    SampleDevice("T8JKSZP", "lab-sw-upper", "EX2300", "globex"),
    SampleDevice("t8jkszp", "lab-sw-lower", "EX2300", "globex", status=True),
    SampleDevice(
        "SN-0005",
        "bcn-ap-17",
        "MR46",
        "globex",
        mac_address="e0:55:3d:00:11:22",
        location="Barcelona",
    ),
)


def expected_values(devices: Iterable[SampleDevice]) -> dict[str, dict[str, object]]:
    """Serial -> the values its record must carry, for ``Subject.expected``."""
    return {device.serial_number: device.values() for device in devices}


@dataclass
class Subject:
    """A connector under test and what its source holds.

    ``options`` are the plugin options it was built from; ``expected`` maps each
    serial in the source to values its record must carry (a subset of the record's
    values is fine); ``redeliver``, if given, makes the source deliver the same devices
    again as new input (the CSV connector drops a reordered copy); without it a plain
    second fetch must deliver them again (a full pull does).
    """

    connector: Connector
    options: Mapping[str, Any]
    expected: Mapping[str, Mapping[str, object]]
    redeliver: Callable[[], None] | None = None


@dataclass
class Fetched:
    """One batch and the items it streamed."""

    batch: Batch
    items: list[Item]

    @property
    def records(self) -> list[DeviceRecord]:
        """The batch's records."""
        return [item for item in self.items if isinstance(item, DeviceRecord)]

    @property
    def rejects(self) -> list[Reject]:
        """The batch's rejects."""
        return [item for item in self.items if isinstance(item, Reject)]


def drain(connector: Connector) -> list[Fetched]:
    """Fetch every ready batch and read its items (nothing is committed)."""
    return [Fetched(batch, list(batch.items())) for batch in connector.fetch()]


def commit_all(fetched: Iterable[Fetched]) -> None:
    """Commit the accepted batches, fail the others (as the pipeline does)."""
    for one in fetched:
        if one.batch.verdict.accepted:
            one.batch.commit()
        else:
            one.batch.fail(one.batch.verdict.reason)


def hashes(fetched: Iterable[Fetched]) -> dict[str, str]:
    """Serial -> content hash over every record fetched."""
    return {
        record.serial_number: record.content_hash() for one in fetched for record in one.records
    }


class ConnectorConformance:
    """Subclass as ``Test...`` with ``plugin`` set and a ``subject`` fixture."""

    plugin: ClassVar[str] = ""

    @pytest.fixture
    def subject(self) -> Subject:
        """Overridden by the connector's test class."""
        raise NotImplementedError("define a `subject` fixture in the conformance subclass")

    # -- the plugin ------------------------------------------------------------------------

    def test_connector_satisfies_the_protocol(self, subject: Subject) -> None:
        connector = subject.connector
        assert isinstance(connector, Connector)
        assert isinstance(connector.name, str)
        assert connector.name
        assert isinstance(connector.Config, type)
        assert issubclass(connector.Config, BaseModel)

    def test_config_accepts_the_options_and_forbids_unknown_ones(self, subject: Subject) -> None:
        config_model = subject.connector.Config
        config_model.model_validate(dict(subject.options))
        with pytest.raises(ValidationError, match="no_such_option"):
            config_model.model_validate({**subject.options, "no_such_option": 1})

    def test_plugin_is_registered_and_builds_from_options(self, subject: Subject) -> None:
        self._require_registered()
        factory: object = load_plugin(self.plugin)
        assert factory is type(subject.connector)
        built = build_connector("conformance", self.plugin, subject.options)
        assert type(built) is type(subject.connector)
        assert built.name == "conformance"

    def test_unknown_option_is_a_config_error_naming_it(self, subject: Subject) -> None:
        self._require_registered()
        with pytest.raises(ConfigError) as caught:
            build_connector("conformance", self.plugin, {**subject.options, "no_such_option": 1})
        assert any("no_such_option" in problem.location for problem in caught.value.problems)

    # -- what fetch() yields ---------------------------------------------------------------

    def test_fetch_yields_batches(self, subject: Subject) -> None:
        batches = list(subject.connector.fetch())
        assert batches, "the source holds devices: fetch() must yield at least one batch"
        for batch in batches:
            assert isinstance(batch, Batch)
            assert isinstance(batch.origin, str)
            assert batch.origin
            assert batch.mode in ("snapshot", "delta")

    def test_items_stream_lazily(self, subject: Subject) -> None:
        batch = next(iter(subject.connector.fetch()))
        items = batch.items()
        assert isinstance(items, Iterator), "items() must stream, not build a list"
        assert iter(items) is items

    def test_items_are_well_formed(self, subject: Subject) -> None:
        name = subject.connector.name
        for one in drain(subject.connector):
            for item in one.items:
                assert isinstance(item, DeviceRecord | Reject), item
                assert item.source == name, item
                if isinstance(item, Reject):
                    assert item.location, item
                    assert item.reason, item
                    continue
                assert item.serial_number, item
                assert item.serial_number == item.serial_number.strip(), item
                assert item.origin, item
                assert item.action in ("upsert", "delete"), item
                hash(item)  # frozen and hashable: the engine keys on records

    def test_values_are_normalised(self, subject: Subject) -> None:
        for one in drain(subject.connector):
            for record in one.records:
                _assert_normalised(record)

    def test_verdict_is_not_accepted_before_the_items_are_read(self, subject: Subject) -> None:
        for batch in subject.connector.fetch():
            assert not batch.verdict.accepted, "an unread batch must never look accepted"

    def test_verdict_counts_match_the_items(self, subject: Subject) -> None:
        for one in drain(subject.connector):
            verdict = one.batch.verdict
            assert verdict.records == len(one.records)
            assert verdict.rejects == len(one.rejects)
            assert verdict.accepted or verdict.reason, "a refusal must say why"

    def test_records_say_what_the_source_holds(self, subject: Subject) -> None:
        fetched = drain(subject.connector)
        assert all(one.batch.verdict.accepted for one in fetched), [
            one.batch.verdict for one in fetched
        ]
        records = {record.serial_number: record for one in fetched for record in one.records}
        assert set(records) == set(subject.expected)
        for serial, values in subject.expected.items():
            carried = records[serial].values()
            for key, value in values.items():
                assert carried.get(key) == value, (serial, key, carried.get(key), value)

    # -- after the batch -------------------------------------------------------------------

    def test_fetch_after_commit_brings_nothing_new(self, subject: Subject) -> None:
        first = drain(subject.connector)
        commit_all(first)
        before = set(hashes(first).items())
        again = drain(subject.connector)
        assert set(hashes(again).items()) <= before
        commit_all(again)

    def test_same_devices_again_hash_the_same(self, subject: Subject) -> None:
        first = drain(subject.connector)
        commit_all(first)
        if subject.redeliver is not None:
            subject.redeliver()
        second = drain(subject.connector)
        assert hashes(second) == hashes(first), "same devices, same content hashes"
        commit_all(second)

    def test_fail_sets_the_batch_aside_and_fetch_goes_on(self, subject: Subject) -> None:
        for one in drain(subject.connector):
            one.batch.fail("conformance suite: refused on purpose")
        for one in drain(subject.connector):
            for record in one.records:
                _assert_normalised(record)

    def _require_registered(self) -> None:
        if not self.plugin:
            pytest.fail("set `plugin` on the conformance subclass")
        if self.plugin not in available_plugins():
            pytest.skip(
                f"plugin {self.plugin!r} is not registered: add it under "
                '[project.entry-points."syncd.connectors"] in pyproject.toml and reinstall'
            )


def _assert_normalised(record: DeviceRecord) -> None:
    values = record.values()
    for name in _TEXT_FIELDS:
        text = values.get(name)
        if text is not None:
            assert isinstance(text, str), (record.serial_number, name, text)
            assert text == text.strip(), (record.serial_number, name, text)
    for name in ("device_type", "organization"):
        value = values.get(name)
        if value is not None:
            assert isinstance(value, str | int), (record.serial_number, name, value)
            assert not isinstance(value, bool), (record.serial_number, name, value)
    status = values.get("status")
    assert status is None or isinstance(status, bool), (record.serial_number, status)
    ip = values.get("ip_address")
    if ip:
        assert isinstance(ip, str)
        assert canonical_ip(ip) == ip, f"{ip!r} is not a compressed address"
    mac = values.get("mac_address")
    if mac:
        assert isinstance(mac, str)
        assert canonical_mac(mac) == mac, f"{mac!r} is not aa:bb:cc:dd:ee:ff"
