"""The connector protocol: how a source becomes ``DeviceRecord``s.

A connector is a plugin, registered in the ``syncd.connectors`` entry-point group
and configured as a plugin name plus its options (the shape Nornir users know)::

    [[connectors]]
    name = "procurement"        # this instance's name: the records' ``source``
    plugin = "csv_drop"         # the entry point
    [connectors.options]        # validated by the plugin's ``Config`` model
    inbox = "/srv/syncd/inbox"

``fetch()`` yields one or more ``Batch``es. A batch is a unit the source delivers
whole or not at all (one CSV file, one NetBox pull): its ``items()`` stream records
and rejects; after they are exhausted, ``verdict`` says whether the batch may be
used. The caller stages what it reads, and only when the batch is accepted *and*
stored does it call ``commit()`` (the CSV connector then moves the file to
``processed/``, NetBox advances its watermark); otherwise ``fail(reason)``.

A batch that leaves its data somewhere a person can look (the CSV connector's file in
``processed/`` or ``failed/``) may say where with a ``stored_at`` attribute, read once it
is set down; the audit then points each reject's file:line there.

A batch may also carry a ``mark`` (``MarkedBatch``): the connector's new state (the
``ConnectorState`` dict) once this batch is stored. The caller saves it in the same
transaction as the batch (syncd: ``StagedBatch.commit(watermark=batch.mark)``), so the
state never describes data the store does not hold; ``commit()`` then leaves the state
alone. The CSV connector keeps its "last accepted content" this way.

``mode`` says what absence means. In a ``snapshot`` batch the records are the
whole list for this connector, so a serial it no longer lists is an orphan
candidate. In a ``delta`` batch only the listed serials change (``action="delete"``
or ``wanted=False`` marks removals).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from syncd.errors import ConfigError, Problem
from syncd.records import DeviceRecord, RecordBlock, Reject

ENTRY_POINT_GROUP = "syncd.connectors"

BatchMode = Literal["snapshot", "delta"]
Item = DeviceRecord | Reject


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a batch may be used, known once its items are exhausted."""

    accepted: bool
    reason: str = ""
    records: int = 0
    rejects: int = 0


@runtime_checkable
class Batch(Protocol):
    """One unit of source data, used whole or not at all."""

    origin: str
    mode: BatchMode

    def items(self) -> Iterator[Item]:
        """Stream the batch's records and rejects (call once)."""
        ...

    @property
    def verdict(self) -> Verdict:
        """Valid after ``items()`` is exhausted."""
        ...

    def commit(self) -> None:
        """The batch was stored: make it final at the source (move the file, save the mark)."""
        ...

    def fail(self, reason: str) -> None:
        """The batch was not used: set it aside at the source, with the reason."""
        ...


@runtime_checkable
class MarkedBatch(Batch, Protocol):
    """A batch whose connector keeps state in the store, saved with the batch."""

    @property
    def mark(self) -> dict[str, Any] | None:
        """Once the batch is read and accepted: what the connector's state becomes when
        it is stored, for the caller to save in the same transaction; ``None``: leave
        the state as it is."""
        ...


@runtime_checkable
class BlockBatch(Batch, Protocol):
    """A batch that can hand over its records in columns (``RecordBlock``): the store
    stages a block without building a ``DeviceRecord`` per row. ``blocks()`` streams
    what ``items()`` streams, in the same order, a run of records at a time; a caller
    reads one or the other, once."""

    def blocks(self) -> Iterator[Item | RecordBlock]:
        """Stream the batch's records (in blocks, or one by one) and rejects."""
        ...


@runtime_checkable
class Connector(Protocol):
    """A source of device records. ``Config`` is the pydantic model of its options.

    A connector may also offer ``check() -> list[Problem]``: what would stop a fetch
    (a missing folder, say), found without changing anything, each problem located by
    the option at fault. ``syncd config check`` reports them.
    """

    Config: ClassVar[type[BaseModel]]
    name: str

    def fetch(self) -> Iterator[Batch]:
        """Yield the batches that are ready now (may be none)."""
        ...


class ConnectorState(Protocol):
    """A connector's small persistent memory (a JSON-able dict), e.g. an incremental
    watermark. syncd backs it with the state store; a connector used on its own may
    keep it in a file."""

    def load(self) -> dict[str, Any]:
        """The last saved dict, or ``{}`` if nothing was saved."""
        ...

    def save(self, data: dict[str, Any]) -> None:
        """Replace the saved dict (atomically: a crash leaves the old or the new one)."""
        ...


class ConnectorFactory(Protocol):
    """What an entry point loads: builds a connector from its instance name and options."""

    @property
    def Config(self) -> type[BaseModel]: ...  # noqa: N802 - mirrors the class attribute

    def __call__(self, name: str, config: Any) -> Connector: ...


def available_plugins() -> dict[str, str]:
    """Plugin name -> ``module:attr`` for every installed connector."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugin(plugin: str) -> ConnectorFactory:
    """The connector class registered as ``plugin``; ``ConfigError`` if there is none."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == plugin:
            factory: ConnectorFactory = ep.load()
            return factory
    known = ", ".join(sorted(available_plugins())) or "none installed"
    raise ConfigError(
        [Problem(f"plugin {plugin!r}", f"no such connector plugin (available: {known})")]
    )


def build_connector(
    name: str,
    plugin: str,
    options: Mapping[str, Any],
    *,
    where: str = "connectors",
    state: ConnectorState | None = None,
) -> Connector:
    """Validate ``options`` against the plugin's ``Config`` and build the connector.

    ``state`` is handed to connectors whose constructor takes a ``state`` keyword.
    """
    factory = load_plugin(plugin)
    try:
        config = factory.Config.model_validate(dict(options))
    except ValidationError as exc:
        problems = [
            Problem(
                f"{where}.options.{'.'.join(str(p) for p in err['loc'])}",
                err["msg"],
            )
            for err in exc.errors(include_url=False)
        ]
        raise ConfigError(problems, source=f"connector {name!r}") from None
    if state is not None and _takes_state(factory):
        return factory(name, config, state=state)  # type: ignore[call-arg]
    return factory(name, config)


def _takes_state(factory: object) -> bool:
    try:
        parameters = inspect.signature(factory).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return "state" in parameters
