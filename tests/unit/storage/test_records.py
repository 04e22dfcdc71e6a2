"""Round trips of the binary encodings and the WAL frame."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from minietcd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from minietcd.storage import records as r

u64 = st.integers(min_value=0, max_value=2**64 - 1)
ids = st.lists(st.integers(min_value=1, max_value=2**64 - 1), max_size=7).map(
    lambda xs: tuple(sorted(set(xs)))
)


@given(term=u64, index=u64, etype=st.sampled_from(EntryType), data=st.binary(max_size=300))
def test_entry_round_trip(term: int, index: int, etype: EntryType, data: bytes) -> None:
    e = Entry(term=term, index=index, type=etype, data=data)
    assert r.decode_entry(r.encode_entry(e)) == e


@given(term=u64, vote=u64, commit=u64)
def test_hard_state_round_trip(term: int, vote: int, commit: int) -> None:
    hs = HardState(term=term, vote=vote, commit=commit)
    assert r.decode_hard_state(r.encode_hard_state(hs)) == hs


@given(index=u64, term=u64, voters=ids, learners=ids, data=st.binary(max_size=200))
def test_snapshot_round_trip(
    index: int, term: int, voters: tuple[int, ...], learners: tuple[int, ...], data: bytes
) -> None:
    meta = SnapshotMetadata(ConfState(voters=voters, learners=learners), index=index, term=term)
    snap = Snapshot(data=data, metadata=meta)
    assert r.decode_snapshot(r.encode_snapshot(snap)) == snap
    decoded, used = r.decode_snapshot_metadata(r.encode_snapshot_metadata(meta))
    assert decoded == meta
    assert used == len(r.encode_snapshot_metadata(meta))


def test_marker_and_crc_round_trip() -> None:
    s = r.WalSnapshot(index=7, term=3)
    assert r.decode_wal_snapshot(r.encode_wal_snapshot(s)) == s
    assert r.decode_crc_payload(r.encode_crc_payload(0xDEADBEEF)) == 0xDEADBEEF


@given(payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=20))
def test_frames_are_aligned_and_chain(payloads: list[bytes]) -> None:
    buf = bytearray()
    crc = 0
    offsets = []
    for p in payloads:
        offsets.append(len(buf))
        crc = r.append_record(buf, r.RecordType.METADATA, p, crc)
        assert len(buf) % 8 == 0  # every frame keeps the next header 8-byte aligned
    prev = 0
    for off, p in zip(offsets, payloads, strict=True):
        hdr = r.parse_frame_header(buf, off)
        assert hdr is not None
        n, pad = hdr
        assert n == 8 + len(p) and (n + pad) % 8 == 0
        rtype, stored, computed = r.body_crc(buf, off, n, prev)
        assert rtype == r.RecordType.METADATA
        assert stored == computed
        prev = computed
    assert prev == crc


def test_crc_record_is_self_contained() -> None:
    buf = bytearray()
    running = r.append_record(buf, r.RecordType.CRC, r.encode_crc_payload(1234), 999)
    assert running == 1234  # the chain continues from the payload, not from prev_crc
    _, stored, computed = r.body_crc(buf, 0, 12, prev_crc=42)  # prev ignored for CRC records
    assert stored == computed


def test_header_check_catches_a_corrupt_length() -> None:
    hdr = bytearray(r.frame_header(24))
    assert r.parse_frame_header(bytes(hdr), 0) == (24, 0)
    for i in range(8):
        for bit in range(8):
            bad = bytearray(hdr)
            bad[i] ^= 1 << bit
            assert r.parse_frame_header(bytes(bad), 0) is None, (i, bit)


def test_crc_is_zlib_crc32_of_type_and_payload() -> None:
    buf = bytearray()
    crc = r.append_record(buf, r.RecordType.ENTRY, b"abc", 5)
    assert crc == zlib.crc32(b"\x02\x00\x00\x00abc", 5)
