"""The LMDB backend: batching, read views, copies, defrag, swapping the file, temporaries."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from minietcd.errors import BackendError
from minietcd.mvcc import KVStore
from minietcd.mvcc.backend import B_KEY, B_META, BATCH_INTERVAL, BATCH_LIMIT, Backend


def test_batch_is_read_before_commit_and_read_views_are_frozen(tmp_path: Path) -> None:
    b = Backend(str(tmp_path / "db"))
    b.put(B_KEY, b"k1", b"v1")
    assert b.get(B_KEY, b"k1") == b"v1"  # the loop reads through the open batch
    view = b.read_view()  # commits first
    b.put(B_KEY, b"k2", b"v2")
    b.delete(B_KEY, b"k1")
    assert view.get(B_KEY, b"k1") == b"v1" and view.get(B_KEY, b"k2") is None
    assert list(view.items(B_KEY)) == [(b"k1", b"v1")]
    view.close()
    assert list(b.items(B_KEY)) == [(b"k2", b"v2")]
    b.close()


def test_only_committed_batches_survive_a_crash(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    b = Backend(path)
    b.put_u64(B_META, b"n", 1)
    b.commit()
    b.put_u64(B_META, b"n", 2)
    b.abort()  # what a kill -9 does to the open batch: the WAL replays it at the restart
    b.close()
    with Backend(path) as again:
        assert again.get_u64(B_META, b"n") == 1


def test_commit_if_due_follows_etcds_batch_interval_and_limit(tmp_path: Path) -> None:
    now = [0.0]
    b = Backend(str(tmp_path / "db"), clock=lambda: now[0])
    b.put(B_KEY, b"a", b"1")
    b.commit_if_due()
    assert _committed(b) == []  # young and small: still open
    now[0] += BATCH_INTERVAL
    b.commit_if_due()
    assert _committed(b) == [b"a"]
    for i in range(BATCH_LIMIT):
        b.put(B_KEY, b"k%05d" % i, b"")
    b.commit_if_due()  # no time passed, but the batch is full
    assert len(_committed(b)) == BATCH_LIMIT + 1
    b.close()


def test_the_members_batch_flags_replace_etcds_defaults(tmp_path: Path) -> None:
    # --backend-batch-interval 2s --backend-batch-limit 3
    now = [0.0]
    b = Backend(str(tmp_path / "db"), clock=lambda: now[0], batch_interval=2.0, batch_limit=3)
    b.put(B_KEY, b"a", b"1")
    now[0] += BATCH_INTERVAL
    b.commit_if_due()
    assert _committed(b) == []  # etcd's 100 ms no longer commits
    now[0] += 2.0
    b.commit_if_due()
    assert _committed(b) == [b"a"]
    for key in (b"b", b"c"):
        b.put(B_KEY, key, b"")
        b.commit_if_due()
    assert _committed(b) == [b"a"]
    b.put(B_KEY, b"d", b"")
    b.commit_if_due()  # the third write of the batch
    assert _committed(b) == [b"a", b"b", b"c", b"d"]
    b.close()


def test_a_negative_batch_limit_commits_every_write_as_etcd_does(tmp_path: Path) -> None:
    b = Backend(str(tmp_path / "db"), clock=lambda: 0.0, batch_limit=-1)
    b.put(B_KEY, b"a", b"1")
    b.commit_if_due()
    assert _committed(b) == [b"a"]
    b.close()


def _committed(b: Backend) -> list[bytes]:
    """Keys a reader outside the batch sees (a plain read txn, not a read_view, which commits)."""
    with b._env.begin() as txn:
        return [bytes(k) for k, _ in txn.cursor(db=b._dbs[B_KEY])]


def test_copy_defragment_and_replace(tmp_path: Path) -> None:
    b = Backend(str(tmp_path / "db"))
    for i in range(3000):
        b.put(B_KEY, b"%08d" % i, os.urandom(512))
    b.commit()
    for i in range(0, 3000, 3):
        b.delete(B_KEY, b"%08d" % i)
    b.commit()
    keep = dict(b.items(B_KEY))
    before, after = b.defragment()
    assert after < before  # the free pages of the deleted records are gone from the file
    assert dict(b.items(B_KEY)) == keep
    # A copy of a view is a database of its own; replacing the file swaps the whole state.
    view = b.read_view()
    b.put(B_KEY, b"later", b"x")
    b.commit()
    copy = str(tmp_path / "copy")
    view.copy_to(copy)
    view.close()
    b.replace_with(copy)
    assert dict(b.items(B_KEY)) == keep
    assert not os.path.exists(copy)
    b.close()


def test_swapping_the_file_waits_for_threads_using_views_and_closes_the_rest(tmp_path: Path) -> None:
    b = Backend(str(tmp_path / "db"))
    b.put(B_KEY, b"k", b"v")
    busy, idle = b.read_view(), b.read_view()
    entered, release = threading.Event(), threading.Event()

    def reader() -> None:
        with busy.in_use():
            entered.set()
            release.wait(5)
            assert busy.get(B_KEY, b"k") == b"v"

    t = threading.Thread(target=reader)
    t.start()
    entered.wait(5)
    closer = threading.Timer(0.2, release.set)
    closer.start()
    b.defragment()  # waits for the reader, then closes both views
    t.join(5)
    assert busy.closed and idle.closed
    with pytest.raises(BackendError, match="read view was closed"):
        idle.copy_to(str(tmp_path / "late"))
    b.close()


def test_temporary_backends_clean_up(tmp_path: Path) -> None:
    b = Backend.temporary()
    d = os.path.dirname(b.path)
    b.put(B_KEY, b"k", b"v")
    assert os.path.isdir(d)
    b.close()
    assert not os.path.exists(d)
    kv = KVStore()
    d = os.path.dirname(kv.backend.path)
    del kv  # collected: the finalizer removes it too
    assert not os.path.exists(d)


def test_a_store_reopened_on_its_backend_rebuilds_its_index(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    kv = KVStore(backend=Backend(path))
    kv.put(b"a", b"1", lease=7)
    kv.put(b"b", b"1")
    kv.put(b"a", b"2", lease=7)
    kv.delete_range(b"b")
    kv.put(b"c", b"3")
    kv.compact(3)
    want = _state(kv)
    kv.close()
    again = KVStore(backend=Backend(path))
    assert _state(again) == want
    assert again.rebuilt_leased_keys() == [(b"a", 7)] == again.leased_keys()
    assert again.get(b"a") is not None and again.get(b"b") is None
    again.close()


def _state(kv: KVStore) -> tuple[object, ...]:
    return (kv.snapshot(), kv.hash_kv(), kv.size_bytes(), kv.current_revision, kv.compact_revision)
