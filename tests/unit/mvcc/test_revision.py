"""Revision ordering and etcd's backend byte encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minietcd.errors import MvccInvariantError
from minietcd.mvcc.revision import (
    MARKED_REV_BYTES_LEN,
    MAX_INT64,
    REV_BYTES_LEN,
    Revision,
    is_tombstone_bytes,
)


def test_ordering_is_main_then_sub() -> None:
    assert Revision(1, 5) < Revision(2, 0)
    assert Revision(2, 0) < Revision(2, 1)
    assert Revision(2, 1) == Revision(2, 1)
    assert sorted([Revision(3, 0), Revision(1, 1), Revision(1, 0)]) == [
        Revision(1, 0),
        Revision(1, 1),
        Revision(3, 0),
    ]


def test_encoding_is_etcds() -> None:
    # etcd revToBytes: 8-byte big-endian main, '_', 8-byte big-endian sub.
    assert Revision(1, 2).to_bytes() == b"\x00" * 7 + b"\x01_" + b"\x00" * 7 + b"\x02"
    assert len(Revision(5, 0).to_bytes()) == REV_BYTES_LEN
    marked = Revision(5, 0).to_bytes(tombstone=True)
    assert len(marked) == MARKED_REV_BYTES_LEN and marked.endswith(b"t")
    assert is_tombstone_bytes(marked)
    assert not is_tombstone_bytes(Revision(5, 0).to_bytes())


@given(st.integers(0, MAX_INT64), st.integers(0, MAX_INT64), st.booleans())
def test_round_trip(main: int, sub: int, tomb: bool) -> None:
    rev = Revision(main, sub)
    assert Revision.from_bytes(rev.to_bytes(tomb)) == rev


@given(
    st.tuples(st.integers(0, MAX_INT64), st.integers(0, MAX_INT64)),
    st.tuples(st.integers(0, MAX_INT64), st.integers(0, MAX_INT64)),
)
def test_byte_order_matches_revision_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    # The hash and snapshot walk records in bolt's byte order; it must be revision order.
    ra, rb = Revision(*a), Revision(*b)
    assert (ra < rb) == (ra.to_bytes() < rb.to_bytes())


def test_negative_round_trips_like_go() -> None:
    assert Revision.from_bytes(Revision(-1, 0).to_bytes()) == Revision(-1, 0)


def test_bad_length_rejected() -> None:
    with pytest.raises(MvccInvariantError):
        Revision.from_bytes(b"short")
