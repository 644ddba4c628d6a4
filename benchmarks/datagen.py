"""Seeded, streamed test data for the benchmarks: a baseline device list and its next version.

Every device is a pure function of ``(seed, index)``, so nothing is held in memory
while a million-row CSV is written, and the inventory's ``Device`` objects for the
mirror can be rebuilt from the same indexes without parsing the file. ``Scenario``
decides, from the seed alone, which baseline devices change (1 %), which disappear
(0.5 %) and where the new ones (0.5 %) are inserted.

The file looks like a procurement export: a header the CSV connector maps through
its built-in aliases (``Serial Number``, ``Hostname``, ``Model``, ``Tenant``,
``Mgmt IP``, ``MAC``, ``Site``, ``Description``, ``Firmware``), some descriptions
with commas (so some fields are quoted), devices in index order with new ones
interleaved. Serials are unique by construction: an invertible mix of the index,
written in base 36 behind a vendor-like prefix.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER: tuple[str, ...] = (
    "Serial Number",
    "Hostname",
    "Model",
    "Tenant",
    "Mgmt IP",
    "MAC",
    "Site",
    "Description",
    "Firmware",
)

#: The ``DeviceRecord`` field of each column, in ``HEADER`` order.
FIELDS: tuple[str, ...] = (
    "serial_number",
    "name",
    "device_type",
    "organization",
    "ip_address",
    "mac_address",
    "location",
    "description",
    "firmware_version",
)

#: Device models (the ``Model`` column); the policy maps each to type id ``index + 1``.
TYPES: tuple[str, ...] = tuple(
    f"{family}-{ports}{suffix}"
    for family in ("C9300", "C9200L", "EX4300", "DCS-7050")
    for ports, suffix in (
        (24, "T"),
        (48, "P"),
        (24, "U"),
        (48, "T"),
        (12, "X"),
        (16, "S"),
        (32, "Q"),
        (48, "UXM"),
        (8, "PC"),
        (24, "FP"),
    )
)
#: Tenants (the ``Tenant`` column); the policy maps each to organization id ``index + 1``.
ORGANIZATIONS: tuple[str, ...] = tuple(
    f"{name}-{region}"
    for name in ("acme", "globex", "initech", "umbrella", "hooli")
    for region in ("emea", "amer", "apac", "lab")
)
SITES: tuple[str, ...] = tuple(
    f"{city}{n}-hall-{hall}"
    for city in ("fra", "ams", "lon", "par", "mad", "nyc", "sjc", "sin", "syd", "tyo")
    for n in (1, 2, 3)
    for hall in range(1, 11)
)
DESCRIPTIONS: tuple[str, ...] = (
    "access switch",
    "access switch, floor 2",
    "core switch, rack 12",
    "distribution switch",
    "edge router",
    "lab unit, do not ship",
    "spare, cold standby",
    "top-of-rack, row C",
    "",
    "out-of-band management",
)
FIRMWARES: tuple[str, ...] = ("17.9.4", "17.9.5", "17.12.1", "17.12.3", "21.4R3", "22.2R1")
_PREFIXES: tuple[str, ...] = ("FOC", "FDO", "JAE", "SAL", "JPE", "FCW")
_ROLES: tuple[str, ...] = ("acc", "dist", "core", "tor", "oob")

#: Fields a "changed" device may differ in (one or two of them per device).
CHANGEABLE: tuple[str, ...] = (
    "name",
    "device_type",
    "organization",
    "ip_address",
    "mac_address",
    "location",
    "description",
    "firmware_version",
)

_BITS = 41
_MASK = (1 << _BITS) - 1
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _mix(value: int) -> int:
    """An invertible scramble of a 41-bit number (odd multipliers and xor-shifts):
    distinct indexes give distinct serials that do not look sequential."""
    value &= _MASK
    value ^= value >> 17
    value = (value * 0x1_5A4E_35D7_1B) & _MASK
    value ^= value >> 13
    value = (value * 0x0_C2B2_AE3D_27) & _MASK
    return value ^ (value >> 16)


def _base36(value: int) -> str:
    out = []
    for _ in range(8):  # 36**8 > 2**41
        value, digit = divmod(value, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def device_row(seed: int, index: int) -> dict[str, str]:
    """Device ``index`` of the data set ``seed``: one value per ``FIELDS`` entry, as text."""
    h = _mix(index + (seed << 24))
    serial = f"{_PREFIXES[h % len(_PREFIXES)]}{_base36(_mix(index ^ (seed << 30)))}"
    site = SITES[(h >> 3) % len(SITES)]
    return {
        "serial_number": serial,
        "name": f"{site.split('-', 1)[0]}-{_ROLES[(h >> 11) % len(_ROLES)]}-{index:07d}",
        "device_type": TYPES[(h >> 5) % len(TYPES)],
        "organization": ORGANIZATIONS[(h >> 13) % len(ORGANIZATIONS)],
        "ip_address": f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}",
        "mac_address": (
            f"00:1b:{(h >> 8) & 255:02x}:{(index >> 16) & 255:02x}:"
            f"{(index >> 8) & 255:02x}:{index & 255:02x}"
        ),
        "location": site,
        "description": DESCRIPTIONS[(h >> 17) % len(DESCRIPTIONS)],
        "firmware_version": FIRMWARES[(h >> 21) % len(FIRMWARES)],
    }


def _next_in(options: tuple[str, ...], value: str) -> str:
    return options[(options.index(value) + 1) % len(options)]


def changed_row(seed: int, index: int, fields: tuple[str, ...]) -> dict[str, str]:
    """Device ``index`` with each of ``fields`` given another (still valid) value."""
    row = device_row(seed, index)
    for name in fields:
        value = row[name]
        if name == "name":
            row[name] = f"{value}-r"
        elif name == "device_type":
            row[name] = _next_in(TYPES, value)
        elif name == "organization":
            row[name] = _next_in(ORGANIZATIONS, value)
        elif name == "ip_address":
            row[name] = f"172.16.{(index >> 8) & 255}.{index & 255}"
        elif name == "mac_address":
            row[name] = "02" + value[2:]
        elif name == "location":
            row[name] = _next_in(SITES, value)
        elif name == "description":
            row[name] = f"{value} (moved)" if value else "re-racked"
        elif name == "firmware_version":
            row[name] = _next_in(FIRMWARES, value)
        else:  # pragma: no cover - CHANGEABLE names every case
            raise ValueError(name)
    return row


@dataclass(frozen=True, slots=True)
class Scenario:
    """Which devices the "next" file changes, drops and adds, decided by ``seed``.

    ``changed`` maps a baseline index to the fields it changes; ``removed`` are
    baseline indexes the next file leaves out; new devices get indexes ``n``,
    ``n + 1``, ... and ``inserted`` maps a baseline index to the new indexes written
    just before it (key ``n``: at the end).
    """

    n: int
    seed: int
    changed: dict[int, tuple[str, ...]]
    removed: frozenset[int]
    inserted: dict[int, list[int]]

    @classmethod
    def build(
        cls,
        n: int,
        seed: int,
        *,
        changed_share: float = 0.01,
        new_share: float = 0.005,
        removed_share: float = 0.005,
    ) -> Scenario:
        """Draw the scenario (the same ``n`` and ``seed`` always give the same one)."""
        rng = random.Random(seed)
        n_changed, n_removed = round(n * changed_share), round(n * removed_share)
        n_new = round(n * new_share)
        picked = rng.sample(range(n), n_changed + n_removed)
        changed = {
            index: tuple(rng.sample(CHANGEABLE, rng.choice((1, 2))))
            for index in sorted(picked[:n_changed])
        }
        inserted: dict[int, list[int]] = {}
        for offset, position in enumerate(sorted(rng.choices(range(n + 1), k=n_new))):
            inserted.setdefault(position, []).append(n + offset)
        return cls(n, seed, changed, frozenset(picked[n_changed:]), inserted)

    @property
    def new_count(self) -> int:
        """How many devices the next file adds."""
        return sum(len(v) for v in self.inserted.values())

    @property
    def next_count(self) -> int:
        """Rows in the next file."""
        return self.n - len(self.removed) + self.new_count

    def baseline_rows(self) -> Iterator[dict[str, str]]:
        """The baseline devices, in file order."""
        for index in range(self.n):
            yield device_row(self.seed, index)

    def next_rows(self) -> Iterator[dict[str, str]]:
        """The next devices, in file order: changes applied, removals left out, new
        devices interleaved."""
        seed, changed, removed, inserted = self.seed, self.changed, self.removed, self.inserted
        for index in range(self.n + 1):
            for new in inserted.get(index, ()):
                yield device_row(seed, new)
            if index == self.n:
                return
            if index in removed:
                continue
            fields = changed.get(index)
            yield device_row(seed, index) if fields is None else changed_row(seed, index, fields)


def write_csv(path: Path, rows: Iterator[dict[str, str]]) -> int:
    """Write ``rows`` as a procurement CSV at ``path``; returns the rows written."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow([row[name] for name in FIELDS])
            count += 1
    return count


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Read a file ``write_csv`` wrote back into rows keyed by ``FIELDS``."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for cells in reader:
            yield dict(zip(FIELDS, cells, strict=True))
