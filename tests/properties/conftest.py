"""Fixtures of the property tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.profiles import NIGHTLY
from tests.properties.world import ZygoteLauncher


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under the nightly profile a property test runs as long as its examples take."""
    if NIGHTLY:
        for item in items:
            if item.path.parent.name == "properties":
                item.add_marker(pytest.mark.timeout(0))


@pytest.fixture(scope="session")
def launcher() -> Iterator[ZygoteLauncher]:
    """Starts ``syncd`` commands as processes of their own, forked from a pre-imported
    interpreter (20 ms instead of 2 s each)."""
    zygote = ZygoteLauncher()
    try:
        yield zygote
    finally:
        zygote.close()
