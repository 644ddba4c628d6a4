"""``Serials``: a million serials held as one buffer, read back exactly as given; and
``SerialSet``: the distinct serials a listing gave, counted and looked up exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.store.serials import Serials, SerialSet

#: Any text a serial could be, the separators included.
serial = st.text(min_size=0, max_size=12)


@given(st.lists(serial, max_size=30))
def test_built_serials_read_back_as_given(given_serials: list[str]) -> None:
    held = Serials.build(iter(given_serials))
    assert len(held) == len(given_serials)
    assert list(held) == given_serials
    assert [held[i] for i in range(len(held))] == given_serials
    assert held[1:-1] == given_serials[1:-1]
    if given_serials:
        assert held[-1] == given_serials[-1]
    with pytest.raises(IndexError):
        held[len(given_serials)]


@given(st.lists(st.text(st.characters(blacklist_characters="\x1f"), max_size=12), max_size=30))
def test_serials_joined_by_a_separator_read_back_as_given(given_serials: list[str]) -> None:
    held = Serials.joined("\x1f".join(given_serials), len(given_serials), "\x1f")
    assert held is not None
    assert list(held) == given_serials


def test_serials_holding_the_separator_cannot_be_joined() -> None:
    assert Serials.joined("A\x1fB\x1fC", 2, "\x1f") is None  # "A\x1fB" was one of two
    empty = Serials.joined("", 0, "\x1f")
    assert empty is not None
    assert list(empty) == []


def _weak(serial: str) -> int:
    """A hash that most serials share: every lookup goes through the texts."""
    return len(serial) % 3


@pytest.mark.parametrize("weak", [False, True], ids=["hash", "weak"])
@given(
    chunks=st.lists(st.lists(serial, max_size=8), max_size=6),
    asked=st.lists(serial, max_size=12),
)
def test_a_serial_set_is_a_set(weak: bool, chunks: list[list[str]], asked: list[str]) -> None:
    """Counted and looked up as a ``set`` of the strings would be: serials given twice
    (in one chunk or two) count once, and serials sharing a hash are told apart."""
    held = SerialSet(_weak) if weak else SerialSet()
    expected: set[str] = set()
    for chunk in chunks:
        held.update(chunk)
        expected.update(chunk)
        assert len(held) == len(expected)
    assert list(held.missing(asked)) == [s for s in asked if s not in expected]


def test_a_serial_set_grows_after_it_was_looked_up() -> None:
    held = SerialSet()
    held.update({"A": 1, "B": 2})
    assert list(held.missing(["A", "C"])) == ["C"]
    held.update(["C", "Zürich-1"])
    assert len(held) == 4
    assert list(held.missing(["A", "C", "Zürich-1", "Zürich-2", ""])) == ["Zürich-2", ""]
