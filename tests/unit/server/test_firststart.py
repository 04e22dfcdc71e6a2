"""A failed first start leaves nothing behind that breaks the next one (server/firststart.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minietcd.errors import DataDirError
from minietcd.raft.types import HardState
from minietcd.server.config import Config, parse_config
from minietcd.server.firststart import FirstStart, check_data_dir, discard_blank_wal
from minietcd.storage.raft_storage import DiskStorage


def config(data_dir: Path, wal_dir: Path | None = None) -> Config:
    args = ["--data-dir", str(data_dir)] + (["--wal-dir", str(wal_dir)] if wal_dir else [])
    return parse_config(args, {})


def test_undo_removes_what_the_first_start_created_and_keeps_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "operator-notes.txt").write_text("mine\n")  # there before: kept
    wal = tmp_path / "wal"  # not there before: removed whole
    cfg = config(data, wal)
    first = FirstStart.record(cfg)
    assert first is not None
    DiskStorage.open(str(data), wal_path=str(wal), metadata=b"{}").close()
    assert (data / "member").exists() and wal.exists()
    first.undo()
    assert sorted(p.name for p in data.iterdir()) == ["operator-notes.txt"]
    assert not wal.exists()
    assert FirstStart.record(cfg) is not None  # the next start is a first start again


def test_a_restart_is_never_undone(tmp_path: Path) -> None:
    DiskStorage.open(str(tmp_path)).close()  # any existing WAL: a restart, never removed
    assert FirstStart.record(config(tmp_path)) is None


def test_a_blank_wal_is_discarded_and_a_used_one_kept(tmp_path: Path) -> None:
    blank, used = tmp_path / "blank", tmp_path / "used"
    DiskStorage.open(str(blank), metadata=b"{}").close()
    discard_blank_wal(config(blank))
    assert not DiskStorage.exists(str(blank))
    storage = DiskStorage.open(str(used), metadata=b"{}")
    storage.save_ready(HardState(term=1, vote=1, commit=0), [])  # a vote: never forget it
    storage.sync()
    storage.close()
    discard_blank_wal(config(used))
    assert DiskStorage.exists(str(used))


def test_a_data_dir_that_cannot_be_listed_is_etcds_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(DataDirError, match=f"^error listing data dir: {not_a_dir}$"):
        check_data_dir(config(not_a_dir))
    check_data_dir(config(tmp_path / "missing"))  # created by the first start: fine
