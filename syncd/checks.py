"""What ``syncd config check`` verifies beyond the file itself: that the places the
configuration names can be used. A config that validates can still name an inbox
that does not exist or a store that cannot be created; a run would find out only
when it starts. Nothing here creates or changes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from syncd.config import Settings, locate
from syncd.errors import ConfigError, Problem
from syncd.store.access import StoreUnavailableError, probe


@dataclass
class EnvironmentReport:
    """``problems`` need a person (exit 2); ``unavailable`` says the store cannot be
    reached right now (exit 4)."""

    problems: list[Problem] = field(default_factory=list)
    unavailable: StoreUnavailableError | None = None


def check_environment(settings: Settings, file: Path) -> EnvironmentReport:
    """Every problem with the folders, files and databases ``settings`` names, each
    located in ``file`` (or the environment variable that set it)."""
    report = EnvironmentReport(problems=list(_connector_problems(settings, file)))
    try:
        probe(settings.store.url)
    except ConfigError as exc:
        where = locate(file, ("store", "url"))
        report.problems.extend(Problem(where, f"store.url: {p.message}") for p in exc.problems)
    except StoreUnavailableError as exc:
        report.unavailable = exc
    return report


def _connector_problems(settings: Settings, file: Path) -> Iterator[Problem]:
    """Each enabled connector's own ``check()``, if it has one."""
    from connectors.base import build_connector

    for index, connector in enumerate(settings.connectors):
        if not connector.enabled:
            continue
        base = ("connectors", str(index), "options")
        try:
            built = build_connector(connector.name, connector.plugin, connector.options)
        except ConfigError as exc:
            yield from (Problem(locate(file, base), str(p)) for p in exc.problems)
            continue
        check = getattr(built, "check", None)
        if not callable(check):
            continue
        for problem in check():
            yield Problem(
                locate(file, (*base, problem.location)),
                f"connector {connector.name!r}, {problem.location}: {problem.message}",
            )
