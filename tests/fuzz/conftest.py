"""Fixtures and hooks of the fuzz tests."""

from __future__ import annotations

import pytest

from tests.profiles import NIGHTLY


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under the nightly profile a fuzz test runs as long as its examples take."""
    if NIGHTLY:
        for item in items:
            if item.path.parent.name == "fuzz":
                item.add_marker(pytest.mark.timeout(0))
