"""WAL: round trips, segments, replay rules, and above all crash recovery."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minietcd.errors import (
    StorageError,
    WalClosedError,
    WalCorruptError,
    WalLockedError,
    WalSnapshotNotFoundError,
)
from minietcd.raft.types import Entry, EntryType, HardState
from minietcd.storage.records import RecordType, WalSnapshot, decode_entry
from minietcd.storage.wal import WAL, list_segments, parse_segment_name, segment_name
from minietcd.storage.wal_replay import SECTOR_SIZE, SegmentScanner

WAL_LOGGER = "minietcd.storage.wal"


def ents(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Entry]:
    """Entries [lo, hi] with non-zero data (zeros would look like unwritten sectors)."""
    return [
        Entry(term=term, index=i, data=bytes((i + k) % 255 + 1 for k in range(size)))
        for i in range(lo, hi + 1)
    ]


def reopen(d: Path, snap: WalSnapshot | None = None, **kw: int) -> tuple[bytes, HardState, list[Entry]]:
    with WAL.open(str(d), snap, **kw) as w:
        return w.read_all()


def tail_path(d: Path) -> str:
    return list_segments(str(d))[-1].path


def _entry_indexes(path: str) -> list[int]:
    """Indexes of the entries stored in one segment file (decoded on its own)."""
    buf = Path(path).read_bytes()
    scan = SegmentScanner(path, buf, is_last=False).scan(None)
    return [decode_entry(p).index for t, _, p in scan.records if t == RecordType.ENTRY]


def test_segment_names() -> None:
    assert segment_name(1, 0x21) == "0000000000000001-0000000000000021.wal"
    assert parse_segment_name("0000000000000001-0000000000000021.wal") == (1, 0x21)
    assert parse_segment_name("0000000000000001-0000000000000021.wal.tmp") is None
    assert parse_segment_name("junk.wal") is None


def test_create_then_open_round_trip(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"node=1")
    assert w.read_all() == (b"node=1", HardState(), [])
    hs = HardState(term=3, vote=2, commit=4)
    w.save(hs, [*ents(1, 4), Entry(term=3, index=5, type=EntryType.CONF_CHANGE, data=b"cc")])
    w.sync()
    w.close()
    md, st, got = reopen(d)
    assert md == b"node=1"
    assert st == hs
    assert got == [*ents(1, 4), Entry(term=3, index=5, type=EntryType.CONF_CHANGE, data=b"cc")]


def test_create_refuses_an_existing_wal(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    WAL.create(str(d), b"").close()
    with pytest.raises(StorageError):
        WAL.create(str(d), b"")


def test_create_replaces_a_half_made_tmp_dir(tmp_path: Path) -> None:
    (tmp_path / "wal.tmp").mkdir()
    (tmp_path / "wal.tmp" / "garbage").write_bytes(b"x")
    WAL.create(str(tmp_path / "wal"), b"m").close()
    assert not (tmp_path / "wal.tmp").exists()
    assert reopen(tmp_path / "wal")[0] == b"m"


def test_read_all_is_handed_out_once(tmp_path: Path) -> None:
    w = WAL.create(str(tmp_path / "wal"), b"")
    w.read_all()
    with pytest.raises(StorageError):
        w.read_all()
    w.close()


def test_empty_hard_state_is_not_written(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"")
    w.save(HardState(term=1, vote=1, commit=0), [])
    w.save(HardState(), ents(1, 2))  # an empty state means "unchanged"
    w.close()
    assert reopen(d)[1:] == (HardState(term=1, vote=1, commit=0), ents(1, 2))


def test_rotation_and_reading_across_segments(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"meta", segment_size=1024)
    for i in range(1, 121):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=30))
    w.close()
    segs = list_segments(str(d))
    assert len(segs) > 5
    assert [s.seq for s in segs] == list(range(len(segs)))
    assert segs[0].first_index == 0
    for s in segs[:-1]:
        assert os.path.getsize(s.path) >= 1024  # cut only once past the size
    # Each segment is named after the first entry it holds: one past the last of the previous.
    indexes = [_entry_indexes(s.path) for s in segs]
    for prev_ix, s, ix in zip(indexes, segs[1:], indexes[1:], strict=False):
        assert s.first_index == prev_ix[-1] + 1 == ix[0]
    md, st, got = reopen(d, segment_size=1024)
    assert md == b"meta"
    assert st == HardState(term=1, vote=1, commit=119)
    assert got == ents(1, 120, size=30)


def test_new_segment_repeats_metadata_and_hard_state(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"meta", segment_size=512)
    w.save(HardState(term=4, vote=1, commit=40), ents(1, 40, size=20))  # one save, then a cut
    assert [s.first_index for s in w.segments()] == [0, 41]
    w.save(HardState(), ents(41, 45, size=20))
    w.save_snapshot_marker(45, 1)
    w.sync()
    assert len(w.release_before(45)) == 1
    w.close()
    # Only the second segment is left: it alone carries the metadata, the hard state and the
    # CRC to chain from.
    assert reopen(d, WalSnapshot(45, 1)) == (b"meta", HardState(term=4, vote=1, commit=40), [])


def test_conflicting_suffix_is_replaced_on_replay(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=700)
    w.save(HardState(term=1, vote=1, commit=3), ents(1, 10, term=1))
    w.save(HardState(term=2, vote=2, commit=3), ents(6, 8, term=2))  # a new leader's suffix
    w.save(HardState(term=3, vote=3, commit=3), ents(8, 9, term=3))
    w.close()
    got = reopen(d)[2]
    assert got == ents(1, 5, term=1) + ents(6, 7, term=2) + ents(8, 9, term=3)


def test_entry_gap_is_reported(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"")
    w.save(HardState(), ents(1, 3))
    w.save(HardState(), ents(7, 8))
    w.close()
    with pytest.raises(WalCorruptError, match="gap"):
        reopen(d)


def test_open_at_a_snapshot_marker(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"")
    w.save(HardState(term=1, vote=1, commit=20), ents(1, 20))
    w.save_snapshot_marker(10, 1)
    w.save(HardState(term=1, vote=1, commit=25), ents(21, 25))
    w.close()
    assert reopen(d, WalSnapshot(10, 1))[2] == ents(11, 25)
    assert WAL.valid_snapshots(str(d)) == [WalSnapshot(0, 0), WalSnapshot(10, 1)]
    with pytest.raises(WalSnapshotNotFoundError):
        reopen(d, WalSnapshot(12, 1))
    with pytest.raises(WalSnapshotNotFoundError):
        reopen(d, WalSnapshot(10, 2))  # right index, wrong term


def test_valid_snapshots_ignores_markers_beyond_commit(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"")
    w.save(HardState(term=1, vote=1, commit=5), ents(1, 10))
    w.save_snapshot_marker(5, 1)
    w.save_snapshot_marker(9, 1)  # its Ready's hard state never made it
    w.close()
    assert WAL.valid_snapshots(str(d)) == [WalSnapshot(0, 0), WalSnapshot(5, 1)]


def test_snapshot_marker_names_the_next_segment(tmp_path: Path) -> None:
    # A follower installing a snapshot far ahead: the next segment starts after it.
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=256)
    w.save_snapshot_marker(1000, 5)
    w.save(HardState(term=5, vote=0, commit=1000), ents(1001, 1010, term=5))
    w.close()
    assert list_segments(str(d))[-1].first_index == 1011
    assert reopen(d, WalSnapshot(1000, 5))[2] == ents(1001, 1010, term=5)


# --- crash recovery ----------------------------------------------------------------------------


def _write_records(d: Path, n: int, size: int = 37) -> list[int]:
    """n entries, one record per save; returns each record's offset in the (single) segment."""
    w = WAL.create(str(d), b"meta")
    path = tail_path(d)
    offsets = []
    for i in range(1, n + 1):
        offsets.append(os.path.getsize(path))
        w.save(HardState(), ents(i, i, size=size))
    offsets.append(os.path.getsize(path))
    w.close()
    return offsets


def test_torn_last_record_is_truncated_at_every_offset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = tmp_path / "base"
    offsets = _write_records(base, 4)
    last_start, end = offsets[-2], offsets[-1]
    assert end - last_start > 16  # header + body + padding: enough offsets to matter
    for cut in range(last_start, end):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(base, d)
        path = tail_path(d)
        os.truncate(path, cut)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=WAL_LOGGER):
            w = WAL.open(str(d))
        assert w.read_all()[2] == ents(1, 3, size=37), cut
        if cut > last_start:
            assert any("truncating" in r.message for r in caplog.records), cut
        else:
            assert not caplog.records  # a clean end is no news
        assert os.path.getsize(path) == last_start
        # The repaired WAL takes new writes where the good records end.
        w.save(HardState(term=1, vote=1, commit=4), ents(4, 4, size=5))
        w.close()
        assert reopen(d)[1:] == (
            HardState(term=1, vote=1, commit=4),
            [*ents(1, 3, size=37), *ents(4, 4, size=5)],
        )


def test_bad_crc_on_final_record_is_a_torn_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "wal"
    offsets = _write_records(d, 3)
    path = tail_path(d)
    with open(path, "r+b") as f:
        f.seek(offsets[-2] + 20)
        b = f.read(1)
        f.seek(offsets[-2] + 20)
        f.write(bytes([b[0] ^ 0xFF]))
    with caplog.at_level(logging.WARNING, logger=WAL_LOGGER):
        assert reopen(d)[2] == ents(1, 2, size=37)
    assert "crc mismatch" in caplog.text


@pytest.mark.parametrize("which", [1, 2])
def test_flipped_byte_in_a_middle_record_raises_and_changes_nothing(tmp_path: Path, which: int) -> None:
    base = tmp_path / "base"
    offsets = _write_records(base, 4)
    start, end = offsets[which], offsets[which + 1]
    for pos in range(start, end):
        d = tmp_path / f"flip{pos}"
        shutil.copytree(base, d)
        path = tail_path(d)
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[pos] ^= 0xFF
            f.seek(0)
            f.write(data)
        before = Path(path).read_bytes()
        with pytest.raises(WalCorruptError) as err:
            WAL.open(str(d))
        assert err.value.path == path, pos
        assert err.value.offset == start, pos
        assert Path(path).read_bytes() == before  # nothing truncated or overwritten
        # And the lock was released: a fixed file opens again.
        data[pos] ^= 0xFF
        Path(path).write_bytes(bytes(data))
        assert reopen(d)[2] == ents(1, 4, size=37)


def test_corruption_in_an_earlier_segment_raises(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=600)
    for i in range(1, 41):
        w.save(HardState(), ents(i, i, size=40))
    w.close()
    segs = list_segments(str(d))
    assert len(segs) >= 3
    # The last record of a cut segment: nothing follows it in its file, but it is not torn.
    path = segs[1].path
    data = bytearray(Path(path).read_bytes())
    data[-10] ^= 0x01
    Path(path).write_bytes(data)
    with pytest.raises(WalCorruptError) as err:
        WAL.open(str(d))
    assert err.value.path == path
    assert Path(path).read_bytes() == bytes(data)
    # A truncated cut segment is corruption too (a lost record breaks the CRC chain).
    data[-10] ^= 0x01
    Path(path).write_bytes(bytes(data[:-48]))
    with pytest.raises(WalCorruptError):
        WAL.open(str(d))


def test_zero_filled_tail_is_handled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "wal"
    offsets = _write_records(d, 3)
    path = tail_path(d)
    with open(path, "ab") as f:
        f.write(b"\0" * 10_000)  # preallocated space, or a crash after the file grew
    with caplog.at_level(logging.WARNING, logger=WAL_LOGGER):
        assert reopen(d)[2] == ents(1, 3, size=37)
    assert "zero-filled tail" in caplog.text
    assert os.path.getsize(path) == offsets[-1]


def test_partial_record_followed_by_zeros_is_torn(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    offsets = _write_records(d, 3)
    path = tail_path(d)
    os.truncate(path, offsets[-2] + 20)  # header and part of the body landed
    os.truncate(path, offsets[-1] + 4096)  # the rest reads back as zeros
    assert reopen(d)[2] == ents(1, 2, size=37)
    assert os.path.getsize(path) == offsets[-2]


def test_unwritten_sector_inside_the_tail_is_torn(tmp_path: Path) -> None:
    # Pages of one unsynced write reach the disk in any order: a zero sector inside a record
    # with good-looking data after it is still a torn write (etcd's isTornEntry).
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"")
    path = tail_path(d)
    w.save(HardState(), ents(1, 1, size=50))
    big_start = os.path.getsize(path)
    w.save(HardState(), ents(2, 2, size=3 * SECTOR_SIZE))
    w.save(HardState(), ents(3, 5, size=50))
    w.close()
    data = bytearray(Path(path).read_bytes())
    sector = (big_start // SECTOR_SIZE + 1) * SECTOR_SIZE  # a whole sector under the body
    data[sector : sector + SECTOR_SIZE] = bytes(SECTOR_SIZE)
    Path(path).write_bytes(data)
    assert reopen(d)[2] == ents(1, 1, size=50)
    assert os.path.getsize(path) == big_start


def test_zeroed_header_in_the_middle_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    offsets = _write_records(d, 4)
    path = tail_path(d)
    data = bytearray(Path(path).read_bytes())
    data[offsets[1] : offsets[1] + 8] = bytes(8)  # the rest of its sector still has data
    Path(path).write_bytes(data)
    with pytest.raises(WalCorruptError) as err:
        WAL.open(str(d))
    assert err.value.offset == offsets[1]


def test_leftover_tmp_segment_is_ignored_and_removed(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    _write_records(d, 2)
    stray = d / (segment_name(1, 3) + ".tmp")
    stray.write_bytes(b"half a cut")
    assert reopen(d)[2] == ents(1, 2, size=37)
    assert not stray.exists()


def test_missing_middle_segment_is_an_error(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=300)
    for i in range(1, 30):
        w.save(HardState(), ents(i, i, size=40))
    w.close()
    segs = list_segments(str(d))
    os.unlink(segs[2].path)
    with pytest.raises(StorageError, match="sequence"):
        WAL.open(str(d))


# --- release, lock, sync, close ----------------------------------------------------------------


def test_release_before_deletes_whole_segments_only(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=512)
    for i in range(1, 101):
        w.save(HardState(term=1, vote=1, commit=i), ents(i, i, size=40))
    w.save_snapshot_marker(60, 1)
    w.sync()
    before = w.segments()
    gone = w.release_before(60)
    kept = w.segments()
    assert gone and [s.path for s in before[: len(gone)]] == gone
    assert not any(os.path.exists(p) for p in gone)
    assert kept[0].first_index <= 60 < kept[1].first_index
    w.save(HardState(term=1, vote=1, commit=110), ents(101, 110, size=40))
    w.close()
    assert reopen(d, WalSnapshot(60, 1))[2] == ents(61, 110, size=40)
    assert WalSnapshot(60, 1) in WAL.valid_snapshots(str(d))


def test_release_never_deletes_the_tail(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=512)
    w.save(HardState(), ents(1, 30, size=40))
    w.save_snapshot_marker(30, 1)
    w.release_before(10**9)
    assert len(w.segments()) == 1
    w.close()


def test_directory_lock(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"")
    with pytest.raises(WalLockedError):
        WAL.open(str(d))
    code = (
        "import sys\n"
        "from minietcd.errors import WalLockedError\n"
        "from minietcd.storage.wal import WAL\n"
        "try:\n"
        f"    WAL.open({str(d)!r})\n"
        "except WalLockedError:\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 3  # another process is shut out too
    w.close()
    WAL.open(str(d)).close()  # released on close


def test_sync_in_a_worker_thread_while_saving(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=2048)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = []
        for i in range(1, 201):
            w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=30))
            if i % 10 == 0:  # group commit: one sync per ten batches, off this thread
                pending.append(pool.submit(w.sync))
        for f in pending:
            f.result()
    w.close()
    assert reopen(d)[2] == ents(1, 200, size=30)


def test_closed_wal_refuses_writes(tmp_path: Path) -> None:
    w = WAL.create(str(tmp_path / "wal"), b"")
    w.close()
    w.close()  # idempotent
    with pytest.raises(WalClosedError):
        w.save(HardState(term=1), [])
    with pytest.raises(WalClosedError):
        w.sync()


def test_empty_last_segment_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = WAL.create(str(d), b"", segment_size=256)
    w.save(HardState(), ents(1, 20))
    w.close()
    assert len(list_segments(str(d))) == 2
    Path(tail_path(d)).write_bytes(b"")
    with pytest.raises(WalCorruptError) as err:
        WAL.open(str(d))
    assert err.value.path == tail_path(d)
