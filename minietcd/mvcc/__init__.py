"""The multi-version key-value store (modelled on etcd 3.4's ``mvcc`` package).

Public surface::

    store = KVStore(observer=None)            # observer(revision, events) after each write txn
    with store.write() as txn:                # one main revision for the whole txn
        txn.put(b"k", b"v", lease=0, ignore_value=False, ignore_lease=False, prev_kv=False)
        txn.delete_range(b"a", b"c")          # -> DeleteResult(deleted, prev_kvs, revision)
        txn.range(b"k")                       # sees the txn's own writes
    store.range(b"a", b"\\0", RangeOptions(limit=2, revision=0))  # -> RangeResult
    execute_range(store, RangeRequest(...))   # + sort / filters / more, as etcd's apply.go
    evaluate_compares(store, [Compare(b"k", CompareTarget.VERSION, CompareResult.EQUAL, 0)])
    store.compact(rev); store.hash_kv(rev); store.restore(store.snapshot())

Modules: ``revision`` (ordering, etcd's byte encoding), ``key_index`` (generations), ``index``
(ordered keys, range_end conventions), ``kvstore`` (the store), ``write_txn`` (its one open
write txn), ``checks`` (argument checks), ``range_request`` (server-side range extras), ``txn``
(compares), ``codec`` (KeyValue bytes, crc32c, snapshot), ``watch`` (the watch hub: synced /
unsynced / victim watchers fed at each write txn's end), ``watcher`` (one watch, watcher
groups), ``watch_stream`` (a client's stream of watchers).
"""

from minietcd.mvcc.index import GTE_RANGE_END, TreeIndex
from minietcd.mvcc.key_index import Generation, KeyIndex
from minietcd.mvcc.kvstore import KVStore, Observer
from minietcd.mvcc.range_request import (
    RangeReader,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    execute_range,
    finish_range,
    store_options,
)
from minietcd.mvcc.revision import Revision
from minietcd.mvcc.txn import (
    Compare,
    CompareResult,
    CompareTarget,
    compare_kv,
    evaluate_compare,
    evaluate_compares,
)
from minietcd.mvcc.types import (
    DeleteResult,
    Event,
    EventType,
    HashKVResult,
    KeyValue,
    PutResult,
    RangeOptions,
    RangeResult,
)
from minietcd.mvcc.watch import (
    AUTO_WATCH_ID,
    INVALID_WATCH_ID,
    Watcher,
    WatcherState,
    WatchHub,
    WatchResponse,
    WatchStream,
)
from minietcd.mvcc.write_txn import WriteTxn

__all__ = [
    "AUTO_WATCH_ID",
    "GTE_RANGE_END",
    "INVALID_WATCH_ID",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "DeleteResult",
    "Event",
    "EventType",
    "Generation",
    "HashKVResult",
    "KVStore",
    "KeyIndex",
    "KeyValue",
    "Observer",
    "PutResult",
    "RangeOptions",
    "RangeReader",
    "RangeRequest",
    "RangeResponse",
    "RangeResult",
    "Revision",
    "SortOrder",
    "SortTarget",
    "TreeIndex",
    "WatchHub",
    "WatchResponse",
    "WatchStream",
    "Watcher",
    "WatcherState",
    "WriteTxn",
    "compare_kv",
    "evaluate_compare",
    "evaluate_compares",
    "execute_range",
    "finish_range",
    "store_options",
]
