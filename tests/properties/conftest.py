"""Fixtures of the property tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.properties.world import ZygoteLauncher


@pytest.fixture(scope="session")
def launcher() -> Iterator[ZygoteLauncher]:
    """Starts ``syncd`` commands as processes of their own, forked from a pre-imported
    interpreter (20 ms instead of 2 s each)."""
    zygote = ZygoteLauncher()
    try:
        yield zygote
    finally:
        zygote.close()
