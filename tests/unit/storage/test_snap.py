"""Snapshot files: atomic saves, CRC checks, skipping broken files, purge."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from minietcd.errors import SnapshotFileError
from minietcd.raft.types import ConfState, Snapshot, SnapshotMetadata
from minietcd.storage.records import WalSnapshot
from minietcd.storage.snap import Snapshotter, parse_snap_name, snap_name


def snap(index: int, term: int = 1, data: bytes | None = None) -> Snapshot:
    meta = SnapshotMetadata(ConfState(voters=(1, 2, 3), learners=(4,)), index=index, term=term)
    return Snapshot(data=data if data is not None else b"state@%d" % index, metadata=meta)


def test_names() -> None:
    assert snap_name(2, 0x10) == "0000000000000002-0000000000000010.snap"
    assert parse_snap_name("0000000000000002-0000000000000010.snap") == (2, 0x10)
    assert parse_snap_name("0000000000000002-0000000000000010.snap.tmp") is None
    assert parse_snap_name("0000000000000002-0000000000000010.snap.broken") is None


def test_save_and_load_newest(tmp_path: Path) -> None:
    s = Snapshotter(str(tmp_path / "snap"))
    assert s.load_newest() is None
    for i in (5, 10, 7):
        s.save(snap(i))
    s.save(snap(3, term=2))  # a later term sorts after every earlier-term snapshot
    assert s.load_newest() == snap(3, term=2)
    assert Snapshotter(str(tmp_path / "snap")).load_newest() == snap(3, term=2)


def test_empty_snapshot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError):
        Snapshotter(str(tmp_path)).save(Snapshot())


def test_leftover_temp_file_is_ignored_and_purged(tmp_path: Path) -> None:
    s = Snapshotter(str(tmp_path))
    s.save(snap(5))
    # A crash mid-save leaves only the temp file: the name it was meant to get is absent.
    stray = tmp_path / (snap_name(1, 9) + ".tmp")
    stray.write_bytes(b"partial")
    assert s.load_newest() == snap(5)
    assert not (tmp_path / snap_name(1, 9)).exists()
    s.purge(keep=5)
    assert not stray.exists()
    assert s.load_newest() == snap(5)


@pytest.mark.parametrize(
    "damage",
    ["flip_body", "flip_header", "truncate", "empty", "append"],
)
def test_corrupt_snapshot_is_skipped_and_renamed_broken(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    s = Snapshotter(str(tmp_path))
    s.save(snap(5))
    newest = Path(s.save(snap(9, data=b"x" * 100)))
    raw = bytearray(newest.read_bytes())
    if damage == "flip_body":
        raw[-1] ^= 0xFF
    elif damage == "flip_header":
        raw[9] ^= 0x01
    elif damage == "truncate":
        raw = raw[:-1]
    elif damage == "empty":
        raw = bytearray()
    else:
        raw += b"junk"
    newest.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="minietcd.storage.snap"):
        assert s.load_newest() == snap(5)
    assert not newest.exists()
    assert Path(str(newest) + ".broken").read_bytes() == bytes(raw)  # kept for a person
    assert "skipping" in caplog.text
    assert s.load_newest() == snap(5)  # and not tried again


def test_file_whose_name_lies_is_broken(tmp_path: Path) -> None:
    s = Snapshotter(str(tmp_path))
    path = s.save(snap(5))
    os.rename(path, tmp_path / snap_name(1, 6))
    assert s.load_newest() is None
    assert (tmp_path / (snap_name(1, 6) + ".broken")).exists()


def test_load_newest_available(tmp_path: Path) -> None:
    s = Snapshotter(str(tmp_path))
    for i in (5, 10, 15):
        s.save(snap(i))
    assert s.load_newest_available({WalSnapshot(10, 1), WalSnapshot(5, 1)}) == snap(10)
    assert s.load_newest_available([(5, 1)]) == snap(5)
    assert s.load_newest_available({WalSnapshot(15, 2)}) is None  # term must match too
    assert s.load_newest_available(set()) is None
    # A broken candidate falls back to the next one allowed.
    p = tmp_path / snap_name(1, 10)
    p.write_bytes(p.read_bytes()[:-3])
    assert s.load_newest_available({WalSnapshot(10, 1), WalSnapshot(5, 1)}) == snap(5)


def test_purge_keeps_the_newest(tmp_path: Path) -> None:
    s = Snapshotter(str(tmp_path))
    for i in range(1, 8):
        s.save(snap(i))
    removed = s.purge(keep=3)
    assert sorted(os.path.basename(p) for p in removed) == [snap_name(1, i) for i in range(1, 5)]
    assert s.names() == [snap_name(1, i) for i in (7, 6, 5)]
    with pytest.raises(ValueError):
        s.purge(keep=0)
