"""``NetBoxConnector``: each ``fetch()`` is one pull, delivered as one ``Batch``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import structlog
from pydantic import BaseModel

from connectors.base import BatchMode, ConnectorState, Item, Verdict
from connectors.netbox.client import NetBoxClient
from connectors.netbox.config import NetBoxConfig
from connectors.netbox.mapping import DeviceMapper
from connectors.netbox.pull import Puller, PullResult, PullStats
from connectors.netbox.state import JsonFileState, MemoryState, PullMarks
from connectors.netbox.token import auth_scheme, resolve_token

log = structlog.get_logger("connectors.netbox")

PullKind = Literal["full", "incremental", "targeted"]
_State = Literal["new", "reading", "read", "broken", "committed", "failed"]


def fingerprint(config: NetBoxConfig) -> str:
    """A hash of what decides which devices are read and how they map: when it
    changes, the stored snapshot no longer matches and a full pull is due."""
    what = {
        "url": config.url,
        "filters": config.filters,
        "mapping": config.mapping.model_dump(mode="json"),
    }
    blob = json.dumps(what, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=12).hexdigest()


class NetBoxConnector:
    """Reads devices from NetBox (see the package docstring for the whole story).

    ``state`` keeps the marks between runs (default: ``JsonFileState(state_file)`` if
    the options name one, else memory). ``force_full`` makes every ``fetch()`` a full
    pull until reset; ``clock`` (UTC now) schedules the periodic full pull.
    """

    Config: ClassVar[type[BaseModel]] = NetBoxConfig

    def __init__(
        self,
        name: str,
        config: NetBoxConfig,
        *,
        state: ConnectorState | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        if state is None:
            state = JsonFileState(config.state_file) if config.state_file else MemoryState()
        self.state: ConnectorState = state
        self.force_full = False
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.mapper = DeviceMapper(name, config.mapping)
        self.fingerprint = fingerprint(config)

    def __repr__(self) -> str:
        return f"NetBoxConnector({self.name!r}, url={self.config.url!r})"

    def fetch(self, *, force_full: bool | None = None) -> Iterator[NetBoxBatch]:
        """Yield one batch: a full pull (snapshot) or an incremental one (delta).

        Nothing is read from NetBox until the batch's ``items()`` is iterated.
        """
        marks = self.marks()
        forced = self.force_full if force_full is None else force_full
        kind, why = self.next_pull(marks, force_full=forced)
        yield NetBoxBatch(self, kind=kind, marks=marks, why=why)

    def targeted(self, device_id: int | None = None, serial: str | None = None) -> NetBoxBatch:
        """A delta batch for one device (webhook trigger), by NetBox id *or* serial.

        It holds the device's record and those of every device sharing its serial
        (within the filters), or a ``delete`` record for the serial when no device has
        it any more. By id, a device NetBox no longer has (or that left the filters)
        gives an empty batch: its serial is unknown, so a deletion must come from the
        change log (the next incremental pull) or from ``targeted(serial=...)``.
        Committing it moves no watermark.
        """
        if (device_id is None) == (serial is None or not serial.strip()):
            raise ValueError("targeted() needs exactly one of device_id or serial")
        return NetBoxBatch(
            self, kind="targeted", marks=self.marks(), why="", target=(device_id, serial)
        )

    def marks(self) -> PullMarks:
        """The marks saved by the last committed pull."""
        return PullMarks.from_dict(self.state.load())

    def next_pull(  # noqa: PLR0911 - one return per reason
        self, marks: PullMarks, *, force_full: bool = False
    ) -> tuple[Literal["full", "incremental"], str]:
        """Which pull is due, and why."""
        config = self.config
        if force_full:
            return "full", "forced"
        if not config.incremental:
            return "full", "incremental pulls are off"
        if marks.watermark is None:
            return "full", "no watermark yet"
        if marks.fingerprint != self.fingerprint:
            return "full", "filters or mapping changed since the last pull"
        if marks.last_full_pull is None:
            return "full", "no full pull recorded"
        due = marks.last_full_pull + config.full_pull_interval
        if self.clock() >= due:
            return "full", f"last full pull {marks.last_full_pull:%Y-%m-%d %H:%M}Z is due again"
        return "incremental", f"changes since {marks.watermark.isoformat()}"

    def open_client(self) -> NetBoxClient:
        """A client with the token resolved now (``ConfigError`` if there is none)."""
        return NetBoxClient(self.config, resolve_token(self.config, connector=self.name))

    def check(self) -> dict[str, Any]:
        """NetBox's ``/api/status/``: proves the URL, TLS and token work."""
        with self.open_client() as client:
            return client.status()


class NetBoxBatch:
    """One pull. ``items()`` runs it (all requests happen before the first item);
    ``commit()`` saves its marks; ``fail()`` leaves them as they were.

    Beyond the ``Batch`` protocol: ``kind`` (full, incremental, targeted), ``why``
    (why this kind), ``stats`` (``PullStats`` once read) and ``note``.
    """

    def __init__(
        self,
        connector: NetBoxConnector,
        *,
        kind: PullKind,
        marks: PullMarks,
        why: str,
        target: tuple[int | None, str | None] | None = None,
    ) -> None:
        self.kind: PullKind = kind
        self.mode: BatchMode = "snapshot" if kind == "full" else "delta"
        self.why = why
        self._connector = connector
        self._marks = marks
        self._target = target
        self._started = connector.clock()
        self._status: _State = "new"
        self._result: PullResult | None = None
        self._verdict: Verdict | None = None
        url = connector.config.url
        if kind == "full":
            self.origin = f"{url} (full pull: {why})"
        elif kind == "incremental":
            self.origin = f"{url} (incremental pull: {why})"
        else:
            device_id, serial = target or (None, None)
            what = f"device {device_id}" if device_id is not None else f"serial {serial!r}"
            self.origin = f"{url} (targeted pull: {what})"

    def __repr__(self) -> str:
        return f"NetBoxBatch({self.origin!r}, mode={self.mode!r}, state={self._status!r})"

    @property
    def stats(self) -> PullStats | None:
        """What the pull read and made of it; ``None`` before it ran."""
        return self._result.stats if self._result else None

    @property
    def note(self) -> str:
        """A remark on an empty targeted pull (why nothing came back)."""
        return self._result.note if self._result else ""

    @property
    def verdict(self) -> Verdict:
        """Accepted once read, unless the list changed while it was paged."""
        if self._verdict is None:
            return Verdict(False, "not read yet")
        return self._verdict

    def items(self) -> Iterator[Item]:
        """Run the pull and stream its records and rejects (once). A NetBox failure
        raises ``NetBoxError`` before any item is yielded."""
        if self._status != "new":
            raise RuntimeError(f"{self!r}: items() can be read once")
        self._status = "reading"
        return self._stream()

    def _stream(self) -> Iterator[Item]:
        connector = self._connector
        log.info("netbox pull started", connector=connector.name, origin=self.origin)
        try:
            result = self._run()
        except Exception as exc:
            self._status = "broken"
            self._verdict = Verdict(False, f"pull failed: {exc}")
            log.error("netbox pull failed", connector=connector.name, error=str(exc))
            raise
        self._result = result
        yield from result.items
        stats = result.stats
        reason = result.problem or result.note or stats.summary()
        self._verdict = Verdict(
            not result.problem,
            reason,
            records=stats.records,
            rejects=sum(stats.rejects.values()),
        )
        self._status = "read"
        log.info(
            "netbox pull read",
            connector=connector.name,
            accepted=not result.problem,
            summary=reason,
            requests=stats.requests,
        )

    def _run(self) -> PullResult:
        connector = self._connector
        with connector.open_client() as client:
            scheme = auth_scheme(client.api.token)
            log.debug("netbox client", connector=connector.name, url=client.url, auth=scheme)
            puller = Puller(client, connector.config, connector.mapper)
            if self.kind == "full":
                return puller.full(
                    self._marks, started_at=self._started, fingerprint=connector.fingerprint
                )
            if self.kind == "incremental":
                return puller.incremental(self._marks)
            device_id, serial = self._target or (None, None)
            return puller.targeted(device_id=device_id, serial=serial)

    def commit(self) -> None:
        """The batch was stored: save its marks (a targeted pull has none to save)."""
        verdict = self.verdict
        if not verdict.accepted:
            raise RuntimeError(f"{self!r} cannot be committed: {verdict.reason}")
        if self._status != "read" or self._result is None:
            raise RuntimeError(f"{self!r} cannot be committed once {self._status}")
        if self._result.marks is not None:
            self._connector.state.save(self._result.marks.to_dict())
        self._status = "committed"
        log.info("netbox pull committed", connector=self._connector.name, origin=self.origin)

    def fail(self, reason: str) -> None:
        """The batch was not used: the marks stay, so the next pull covers it again."""
        if self._status in ("committed", "failed"):
            return
        self._status = "failed"
        log.warning("netbox pull not used", connector=self._connector.name, reason=reason)
