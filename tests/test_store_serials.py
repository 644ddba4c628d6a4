"""``Serials``: a million serials held as one buffer, read back exactly as given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.store.serials import Serials

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
