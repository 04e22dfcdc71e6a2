"""Writing a bbolt file: ``{bucket name: {key: value}}`` -> the bytes of a whole database.

The root bucket (meta.root) holds one bucket per etcd bucket name. The writer packs each
bucket's sorted items into leaf pages filled up to a page, puts branch levels above until one
root remains, and inlines a bucket when its leaf fits in a quarter page (bbolt's own
``inlineable`` rule, so etcd rewrites nothing on first open). Every page is reachable, so the
freelist (page 2) is empty, and ``tx.Check`` (run by ``etcdctl snapshot status``) finds
neither unreachable nor doubly referenced pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from minietcd.mvcc.bolt_format import (
    BOLT_MAGIC,
    BOLT_VERSION,
    BRANCH_ELEM,
    BRANCH_PAGE,
    BUCKET_HDR,
    BUCKET_LEAF,
    ELEM_SIZE,
    FREELIST_PAGE,
    HDR_SIZE,
    LEAF_ELEM,
    LEAF_PAGE,
    META_BODY,
    META_PAGE,
    PAGE_HDR,
    PAGE_SIZE,
    U64_LE,
    fnv64a,
)


def _meta_page(pgid: int, page_size: int, root: int, freelist: int, high: int, txid: int) -> bytes:
    body = META_BODY.pack(BOLT_MAGIC, BOLT_VERSION, page_size, 0, root, 0, freelist, high, txid)
    page = PAGE_HDR.pack(pgid, META_PAGE, 0, 0) + body + U64_LE.pack(fnv64a(body))
    return page.ljust(page_size, b"\0")


#: A leaf item: key, value, element flags.
_LeafItem = tuple[bytes, bytes, int]


def _node_size(keys_values_len: int, count: int) -> int:
    return HDR_SIZE + count * ELEM_SIZE + keys_values_len


def _encode_leaf(pgid: int, overflow: int, items: Sequence[_LeafItem]) -> bytes:
    """A leaf node as bbolt's ``node.write`` lays it out (unpadded)."""
    n = len(items)
    out = bytearray(PAGE_HDR.pack(pgid, LEAF_PAGE, n, overflow))
    data_off = HDR_SIZE + n * ELEM_SIZE
    for i, (k, v, flags) in enumerate(items):
        out += LEAF_ELEM.pack(flags, data_off - (HDR_SIZE + i * ELEM_SIZE), len(k), len(v))
        data_off += len(k) + len(v)
    for k, v, _flags in items:
        out += k
        out += v
    return bytes(out)


def _encode_branch(pgid: int, overflow: int, children: Sequence[tuple[bytes, int]]) -> bytes:
    n = len(children)
    out = bytearray(PAGE_HDR.pack(pgid, BRANCH_PAGE, n, overflow))
    data_off = HDR_SIZE + n * ELEM_SIZE
    for i, (k, child) in enumerate(children):
        out += BRANCH_ELEM.pack(data_off - (HDR_SIZE + i * ELEM_SIZE), len(k), child)
        data_off += len(k)
    for k, _child in children:
        out += k
    return bytes(out)


def _pack(sizes: Sequence[int], page_size: int) -> list[tuple[int, int]]:
    """Split items (by their element + key + value size) into ``[start, end)`` runs that each
    fit a page; an item too big for a page gets a run of its own (it becomes overflow pages).
    A page is filled up to the brim: a snapshot is written once and then read, so there is no
    point leaving room for inserts as bbolt's 50% fill does."""
    runs: list[tuple[int, int]] = []
    start, size = 0, HDR_SIZE
    for i, s in enumerate(sizes):
        if i > start and size + s > page_size:
            runs.append((start, i))
            start, size = i, HDR_SIZE
        size += s
    if start < len(sizes) or not runs:
        runs.append((start, len(sizes)))
    return runs


class _PageWriter:
    """Allocates page ids in order and collects the page bytes."""

    def __init__(self, page_size: int, first_pgid: int) -> None:
        self.page_size = page_size
        self.next_pgid = first_pgid
        self.pages: list[bytes] = []

    def _alloc(self, size: int) -> tuple[int, int]:
        n = max(1, -(-size // self.page_size))
        pgid = self.next_pgid
        self.next_pgid += n
        return pgid, n - 1

    def _emit(self, raw: bytes, overflow: int) -> None:
        self.pages.append(raw.ljust((overflow + 1) * self.page_size, b"\0"))

    def write_tree(self, items: Sequence[_LeafItem]) -> int:
        """Write a B+tree of ``items`` (sorted by key); returns its root page id."""
        sizes = [ELEM_SIZE + len(k) + len(v) for k, v, _f in items]
        level: list[tuple[bytes, int]] = []
        for start, end in _pack(sizes, self.page_size):
            run = items[start:end]
            pgid, overflow = self._alloc(HDR_SIZE + sum(sizes[start:end]))
            self._emit(_encode_leaf(pgid, overflow, run), overflow)
            level.append((run[0][0] if run else b"", pgid))
        while len(level) > 1:
            bsizes = [ELEM_SIZE + len(k) for k, _p in level]
            upper: list[tuple[bytes, int]] = []
            for start, end in _pack(bsizes, self.page_size):
                run2 = level[start:end]
                pgid, overflow = self._alloc(HDR_SIZE + sum(bsizes[start:end]))
                self._emit(_encode_branch(pgid, overflow, run2), overflow)
                upper.append((run2[0][0], pgid))
            level = upper
        return level[0][1]


def _bucket_value(writer: _PageWriter, content: Mapping[bytes, bytes]) -> bytes:
    """The root-bucket value for one bucket: inline when its single leaf fits a quarter page
    (bbolt's ``inlineable``), else a header pointing at a tree of pages."""
    items: list[_LeafItem] = []
    for k in sorted(content):
        if not isinstance(k, bytes) or not k:
            raise ValueError(f"bolt keys must be non-empty bytes, got {k!r}")
        v = content[k]
        if not isinstance(v, bytes):
            raise TypeError(f"bolt values must be bytes, not {type(v).__name__}")
        items.append((k, v, 0))
    size = _node_size(sum(len(k) + len(v) for k, v, _f in items), len(items))
    if size <= writer.page_size // 4:
        return BUCKET_HDR.pack(0, 0) + _encode_leaf(0, 0, items)
    return BUCKET_HDR.pack(writer.write_tree(items), 0)


def write_bolt(buckets: Mapping[bytes, Mapping[bytes, bytes]], *, page_size: int = PAGE_SIZE) -> bytes:
    """A complete bbolt file holding ``buckets`` (name -> key -> value), every key non-empty."""
    if page_size < 1024 or page_size & (page_size - 1):
        raise ValueError(f"page size {page_size} is not a power of two >= 1024")
    # Pages 0 and 1: metas; page 2: the (empty) freelist; the trees start at 3, as in
    # bbolt's init.
    writer = _PageWriter(page_size, 3)
    root_items: list[_LeafItem] = []
    for name in sorted(buckets):
        if not isinstance(name, bytes) or not name:
            raise ValueError(f"bucket names must be non-empty bytes, got {name!r}")
        root_items.append((name, _bucket_value(writer, buckets[name]), BUCKET_LEAF))
    # The root bucket always gets pages of its own: meta.root cannot point inline.
    root = writer.write_tree(root_items)
    high = writer.next_pgid
    freelist = PAGE_HDR.pack(2, FREELIST_PAGE, 0, 0).ljust(page_size, b"\0")
    head = [
        _meta_page(0, page_size, root, 2, high, 0),
        _meta_page(1, page_size, root, 2, high, 1),
        freelist,
    ]
    return b"".join(head + writer.pages)
