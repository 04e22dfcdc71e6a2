"""The applied state on disk: etcd's backend (``mvcc/backend``), on LMDB instead of bbolt.

LMDB is bbolt's C ancestor: one memory-mapped B+tree file, copy-on-write pages, one writer and
MVCC readers. It holds everything the state machine applied, under etcd 3.4's bucket names and
encodings, so the file maps one to one onto the bbolt file ``etcdctl snapshot save`` gets::

    key              revision key (17 bytes; a tombstone adds b"t") -> marshalled mvccpb.KeyValue
    meta             consistent_index (u64 BE): the last Raft entry applied, written in the same
                     txn as that entry's changes; scheduled/finishedCompactRev (revision keys)
    lease            lease id (u64 BE) -> leasepb.Lease{ID, TTL, RemainingTTL}
    members          member id in hex -> member JSON;  members_removed: id in hex -> b"removed"
    cluster          clusterVersion
    alarm            etcdserverpb.AlarmMember bytes -> b""
    auth             authEnabled (0x01 / 0x00), authRevision (u64 BE)
    authUsers        user name -> authpb.User;  authRoles: role name -> authpb.Role
                     (minietcd.server.auth.store; names over 511 bytes get a shortened key)

Memory holds only the key index (and the lessor): values stay in the file, and the page cache
serves them.

**Batching** (etcd's ``batchTx``): the apply loop writes into one LMDB write transaction, which
:meth:`Backend.commit_if_due` commits once it is ``BATCH_INTERVAL`` old or holds ``BATCH_LIMIT``
writes (etcd's 100 ms / 10,000; ``--backend-batch-interval`` / ``--backend-batch-limit``), and
:meth:`Backend.commit` commits at once (before a snapshot, a defrag, a hash, a close). Reads on
the loop thread go through the open write txn, so they see every applied change at once;
:meth:`Backend.read_view` (a read txn, for another thread) sees the last commit. A commit fsyncs
the data pages and leaves the meta page to the next commit (LMDB's ``metasync=False``): the file
is always consistent, and a crash loses at most the last batch, which the WAL replays (entries
after ``consistent_index``).

**Copies**: :meth:`Backend.copy_to` writes a compacted copy of a read view (LMDB's
``mdb_env_copy`` with ``MDB_CP_COMPACT``, in C, without the GIL), which is both what a new member
receives as its snapshot and what :meth:`Backend.defragment` swaps in.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import TracebackType

import lmdb

from minietcd.errors import BackendCommitError, BackendError
from minietcd.storage.fileutil import go_error_text

B_KEY = b"key"
B_META = b"meta"
B_LEASE = b"lease"
B_MEMBERS = b"members"
B_MEMBERS_REMOVED = b"members_removed"
B_CLUSTER = b"cluster"
B_ALARM = b"alarm"
B_AUTH = b"auth"
B_AUTH_USERS = b"authUsers"
B_AUTH_ROLES = b"authRoles"
BUCKETS = (
    B_KEY, B_META, B_LEASE, B_MEMBERS, B_MEMBERS_REMOVED, B_CLUSTER, B_ALARM,
    B_AUTH, B_AUTH_USERS, B_AUTH_ROLES,
)  # fmt: skip

K_CONSISTENT_INDEX = b"consistent_index"

#: etcd's defaultBatchInterval and defaultBatchLimit.
BATCH_INTERVAL = 0.1
BATCH_LIMIT = 10_000
#: Address space reserved for the map (virtual only: the file grows as data does). etcd's bbolt
#: maps 10 GiB up front; the largest --quota-backend-bytes etcd suggests is 8 GiB.
MAP_SIZE = 64 << 30
#: Map size of a temporary backend (tests, tools).
TEMPORARY_MAP_SIZE = 1 << 30

_U64 = 8


def _u64(value: int) -> bytes:
    return value.to_bytes(_U64, "big")


class Backend:
    """One LMDB environment holding the applied state. See the module docstring."""

    __slots__ = (
        "__weakref__",
        "_batch_interval",
        "_batch_limit",
        "_batch_started",
        "_clock",
        "_copies",
        "_copying",
        "_dbs",
        "_env",
        "_envs",
        "_finalizer",
        "_map_size",
        "_pending",
        "_txn",
        "_views",
        "path",
    )

    def __init__(
        self,
        path: str,
        *,
        map_size: int = MAP_SIZE,
        clock: Callable[[], float] = time.monotonic,
        batch_interval: float = BATCH_INTERVAL,
        batch_limit: int = BATCH_LIMIT,
    ) -> None:
        #: The data file; LMDB keeps its reader table in ``<path>-lock``.
        self.path = os.path.abspath(path)
        self._map_size = map_size
        self._clock = clock
        # --backend-batch-interval / --backend-batch-limit (etcd's defaults when 0).
        self._batch_interval = batch_interval if batch_interval > 0 else BATCH_INTERVAL
        self._batch_limit = batch_limit if batch_limit != 0 else BATCH_LIMIT  # negative: every write
        self._txn: lmdb.Transaction | None = None  # the open batch (write) txn, if any
        self._batch_started = 0.0  # clock() when the batch txn began
        self._pending = 0  # writes in the batch txn
        self._finalizer: weakref.finalize[[list[lmdb.Environment], str], Backend] | None = None
        self._views: set[ReadView] = set()  # open read views (closed before the file is swapped)
        self._copies = threading.Condition()  # guards _copying and _views
        self._copying = 0  # copies running in worker threads (they use a view's txn)
        self._envs: list[lmdb.Environment] = []  # every environment opened (a temporary closes them)
        self._env, self._dbs = self._open(self.path)

    def _open(self, path: str) -> tuple[lmdb.Environment, dict[bytes, lmdb._Database]]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            env = lmdb.open(
                path,
                map_size=self._map_size,
                subdir=False,
                max_dbs=len(BUCKETS) + 1,
                metasync=False,  # data pages are fsynced at commit; the meta page at the next
                readahead=False,  # random reads (bbolt asks for MADV_RANDOM too)
                lock=True,
            )
            dbs = {}
            with env.begin(write=True) as txn:
                for name in BUCKETS:
                    dbs[name] = env.open_db(name, txn=txn, create=True)
        except lmdb.Error as e:
            raise BackendError(f"backend: cannot open {path}: {e}") from e
        self._envs.append(env)
        return env, dbs

    @classmethod
    def temporary(cls) -> Backend:
        """A backend in a private temporary directory, removed when it is closed or collected
        (for tests, and tools that build state before writing it somewhere)."""
        _remove_garbage()
        tmp = tempfile.mkdtemp(prefix="minietcd-backend-")
        b = cls(os.path.join(tmp, "db"), map_size=TEMPORARY_MAP_SIZE)
        b._finalizer = weakref.finalize(b, _remove_temporary, b._envs, tmp)
        return b

    # --- the batch txn ---------------------------------------------------------------------

    def _batch(self) -> lmdb.Transaction:
        txn = self._txn
        if txn is None:
            try:
                txn = self._env.begin(write=True)
            except lmdb.Error as e:
                raise BackendError(f"backend: cannot begin a write txn: {e}") from e
            self._txn = txn
            self._batch_started = self._clock()
            self._pending = 0
        return txn

    def get(self, bucket: bytes, key: bytes) -> bytes | None:
        value = self._batch().get(key, db=self._dbs[bucket])
        return None if value is None else bytes(value)

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        try:
            self._batch().put(key, value, db=self._dbs[bucket])
        except lmdb.Error as e:
            raise BackendError(f"backend: put into {bucket.decode()}: {e}") from e
        self._pending += 1

    def delete(self, bucket: bytes, key: bytes) -> bool:
        """Remove ``key``; False if it was not there."""
        self._pending += 1
        return bool(self._batch().delete(key, db=self._dbs[bucket]))

    def items(
        self, bucket: bytes, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) with ``start <= key`` (and ``key <= stop`` if given), in key order, as
        of now (the batch included). Do not write while iterating."""
        return _items(self._batch(), self._dbs[bucket], start, stop)

    def keys(self, bucket: bytes, start: bytes = b"", stop: bytes | None = None) -> Iterator[bytes]:
        """The keys of :meth:`items`, without copying values."""
        cur = self._batch().cursor(db=self._dbs[bucket])
        if not cur.set_range(start):
            return
        for raw in cur.iternext(keys=True, values=False):
            key = bytes(raw)  # a bytes copy already unless the environment uses buffers
            if stop is not None and key > stop:
                return
            yield key

    def count(self, bucket: bytes) -> int:
        return int(self._batch().stat(self._dbs[bucket])["entries"])

    def clear(self, bucket: bytes) -> None:
        """Remove every key of ``bucket`` (the bucket stays)."""
        self._batch().drop(self._dbs[bucket], delete=False)
        self._pending += 1

    def get_u64(self, bucket: bytes, key: bytes) -> int | None:
        raw = self.get(bucket, key)
        if raw is None:
            return None
        if len(raw) != _U64:
            raise BackendError(f"backend: {bucket.decode()}/{key.decode()} holds {len(raw)} bytes")
        return int.from_bytes(raw, "big")

    def put_u64(self, bucket: bytes, key: bytes, value: int) -> None:
        self.put(bucket, key, _u64(value))

    def commit(self) -> None:
        """Commit the batch (fsyncing its data pages), if one is open."""
        txn, self._txn = self._txn, None
        if txn is None:
            return
        try:
            txn.commit()
        except lmdb.Error as e:
            raise BackendCommitError(f"cannot commit tx ({self._write_error(e)})") from e

    def _write_error(self, e: lmdb.Error) -> str:
        """A failed commit in Go's words (``write <file>: <errno text>``). LMDB reports a short
        write (what a full disk gives first) as EIO; with the file system out of space that
        is ENOSPC, and we say so, as etcd's bbolt does (its write fails with ENOSPC)."""
        target = os.path.join(self.path, "data.mdb")
        reason = str(e).split(": ", 1)[-1]
        code = next((c for c in (errno.ENOSPC, errno.EIO) if os.strerror(c) in reason), None)
        if code == errno.EIO:
            with contextlib.suppress(OSError):
                st = os.statvfs(self.path)
                if st.f_bavail * st.f_frsize < 1 << 20:  # less than 1 MiB left: a full disk
                    code = errno.ENOSPC
        if code is None:
            return f"write {target}: {reason}"
        return go_error_text(OSError(code, os.strerror(code)), "write", target)

    def commit_if_due(self) -> None:
        """Commit when the batch is the batch interval old or holds the batch limit's writes
        (``BATCH_INTERVAL`` and ``BATCH_LIMIT`` unless the member's flags say otherwise)."""
        if self._txn is not None and (
            self._pending >= self._batch_limit
            or self._clock() - self._batch_started >= self._batch_interval
        ):
            self.commit()

    def abort(self) -> None:
        """Drop the batch's uncommitted writes (tests; a failed restore)."""
        txn, self._txn = self._txn, None
        if txn is not None:
            txn.abort()

    # --- read views, copies, sizes ---------------------------------------------------------

    def read_view(self) -> ReadView:
        """The state as of now, frozen (the batch is committed first): an LMDB read txn that a
        worker thread may read and copy from while the loop goes on writing."""
        self.commit()
        view = ReadView(self, self._env.begin(write=False, buffers=False))
        with self._copies:
            self._views.add(view)
        return view

    def _close_views(self) -> None:
        """Before the environment closes: wait for running copies, then close every view (a
        snapshot still waiting to be copied then fails and Raft sends another)."""
        with self._copies:
            while self._copying:
                self._copies.wait()
            views, self._views = self._views, set()
        for view in views:
            view.close()

    def size(self) -> int:
        """The file's size: what etcd reports as dbSize and checks against the quota."""
        info = self._env.info()
        return (int(info["last_pgno"]) + 1) * int(self._env.stat()["psize"])

    def size_in_use(self) -> int:
        """Bytes of the pages that hold data (the rest are free pages a defrag gives back)."""
        psize = int(self._env.stat()["psize"])
        txn = self._batch()
        pages = 2  # the two meta pages
        main = txn.stat(self._env.open_db(None))  # the root db that names the buckets
        for st in (main, *(txn.stat(db) for db in self._dbs.values())):
            pages += int(st["branch_pages"]) + int(st["leaf_pages"]) + int(st["overflow_pages"])
        return min(pages * psize, self.size())

    def copy_to(self, path: str, view: ReadView | None = None) -> None:
        """Write a compacted copy of ``view`` (default: the state now) to the new file ``path``.
        Runs in C without the GIL: call it from a worker thread for a large store."""
        own = view is None
        v = self.read_view() if view is None else view
        try:
            with v.in_use():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    self._env.copyfd(fd, compact=True, txn=v.txn)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except (OSError, lmdb.Error) as e:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise BackendError(f"backend: copy to {path} failed: {e}") from e
        finally:
            if own:
                v.close()

    def defragment(self) -> tuple[int, int]:
        """etcd's Defragment: rewrite the file without its free pages; returns the sizes before
        and after. Blocks writes while it runs, as etcd's does."""
        before = self.size()
        tmp = self.path + ".defrag"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        self.copy_to(tmp)
        self.replace_with(tmp)
        return before, self.size()

    def replace_with(self, path: str) -> None:
        """Make the database file ``path`` (a copy, or a snapshot received from the leader) this
        backend's state: it is renamed over the current file, which is closed first."""
        self.commit()
        self._close_views()
        self._env.close()
        try:
            os.replace(path, self.path)
            _fsync_dir(os.path.dirname(self.path))
        finally:
            self._env, self._dbs = self._open(self.path)

    def close(self, *, commit: bool = True) -> None:
        """Commit and close; a temporary backend also removes its directory. ``commit=False``
        drops the open batch instead (a failed member: what it applied last may be half done;
        the WAL still holds those entries and a restart applies them again)."""
        if self._txn is not None:
            if commit:
                self.commit()
            else:
                txn, self._txn = self._txn, None
                txn.abort()
        self._close_views()
        if self._finalizer is not None:
            self._finalizer()
        else:
            self._env.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ReadView:
    """A frozen state of a :class:`Backend` (an LMDB read transaction). Close it when done:
    while it is open, the pages it sees are not reused, so the file grows."""

    __slots__ = ("__weakref__", "_backend", "closed", "txn")

    def __init__(self, backend: Backend, txn: lmdb.Transaction) -> None:
        self._backend = backend
        self.txn = txn
        self.closed = False

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold this around any use of the view from a worker thread: the backend does not
        close its environment (a defrag, a snapshot install, a shutdown) meanwhile."""
        b = self._backend
        with b._copies:
            if self.closed:
                raise BackendError("backend: the read view was closed (the database was replaced)")
            b._copying += 1
        try:
            yield
        finally:
            with b._copies:
                b._copying -= 1
                b._copies.notify_all()

    def get(self, bucket: bytes, key: bytes) -> bytes | None:
        value = self.txn.get(key, db=self._backend._dbs[bucket])
        return None if value is None else bytes(value)

    def items(
        self, bucket: bytes, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        return _items(self.txn, self._backend._dbs[bucket], start, stop)

    def copy_to(self, path: str) -> None:
        """A compacted copy of this view in the new file ``path`` (see Backend.copy_to)."""
        self._backend.copy_to(path, self)

    def close(self) -> None:
        b = self._backend
        with b._copies:
            if self.closed:
                return
            self.closed = True
            b._views.discard(self)
        self.txn.abort()

    def __enter__(self) -> ReadView:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _items(
    txn: lmdb.Transaction, db: lmdb._Database, start: bytes, stop: bytes | None
) -> Iterator[tuple[bytes, bytes]]:
    cur = txn.cursor(db=db)
    if not cur.set_range(start):
        return
    for raw_key, value in cur.iternext(keys=True, values=True):
        key = bytes(raw_key)
        if stop is not None and key > stop:
            return
        yield key, bytes(value)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_temporary(envs: list[lmdb.Environment], tmp: str) -> None:
    """Close and remove a temporary backend: at once when closed by its owner; when it was
    only garbage collected, later (see _GARBAGE)."""
    if _in_finalizer_of_gc():
        _GARBAGE.append((envs, tmp))
        return
    for env in envs:
        env.close()
    shutil.rmtree(tmp, ignore_errors=True)


#: Temporary backends whose owner dropped them without close(). The garbage collector may run a
#: finalizer in any thread at any allocation, e.g. while that thread, or one it waits for,
#: holds an LMDB lock: closing an environment there can deadlock (seen: a thread starting while
#: the collector closed an environment). So they are closed at the next safe point instead:
#: the next temporary() or the end of the process.
_GARBAGE: list[tuple[list[lmdb.Environment], str]] = []


def _in_finalizer_of_gc() -> bool:
    return _collecting[0] > 0


_collecting = [0]


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    _collecting[0] += 1 if phase == "start" else -1


def _remove_garbage() -> None:
    while _GARBAGE:
        envs, tmp = _GARBAGE.pop()
        _remove_temporary(envs, tmp)


gc.callbacks.append(_gc_callback)
atexit.register(_remove_garbage)
