"""``process.bulk_work``: the collector's thresholds are raised while bulk work runs,
shared by nested and concurrent phases, and put back when the last one ends."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from syncd import process
from syncd.process import BULK_GC_THRESHOLDS, bulk_work


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_raised_inside_and_put_back_after(thresholds: tuple[int, int, int]) -> None:
    with bulk_work():
        assert gc.get_threshold() == BULK_GC_THRESHOLDS
        with bulk_work():  # nested: still raised
            assert gc.get_threshold() == BULK_GC_THRESHOLDS
        assert gc.get_threshold() == BULK_GC_THRESHOLDS
    assert gc.get_threshold() == thresholds


def test_put_back_when_the_work_fails(thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), bulk_work():
        raise RuntimeError("boom")
    assert gc.get_threshold() == thresholds


def test_a_decorated_function_runs_as_bulk_work(thresholds: tuple[int, int, int]) -> None:
    @bulk_work()
    def work() -> tuple[int, int, int]:
        return gc.get_threshold()

    assert (work(), work()) == (BULK_GC_THRESHOLDS, BULK_GC_THRESHOLDS)
    assert gc.get_threshold() == thresholds


def test_higher_thresholds_and_a_disabled_collector_are_kept() -> None:
    gc.set_threshold(100_000, 5, 500)
    with bulk_work():
        assert gc.get_threshold() == (100_000, BULK_GC_THRESHOLDS[1], 500)
    assert gc.get_threshold() == (100_000, 5, 500)
    gc.set_threshold(0, 10, 10)  # 0: no automatic collection at all
    with bulk_work():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_concurrent_phases_share_one_raise(thresholds: tuple[int, int, int]) -> None:
    """Two threads whose phases overlap (A starts, B starts, A ends, B ends): B's phase
    keeps the raise after A's ends, and the thresholds go back only after B's."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, int, int]] = {}

    def first() -> None:
        with bulk_work():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with bulk_work():
            b_in.set()
            a_out.wait(5)
            seen["b after a"] = gc.get_threshold()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen["b after a"] == BULK_GC_THRESHOLDS
    assert gc.get_threshold() == thresholds
    assert process._BULK.depth == 0
