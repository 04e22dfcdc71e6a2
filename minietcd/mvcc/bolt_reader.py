"""Reading a bbolt file back: the bytes of a database -> ``{bucket name: {key: value}}``.

Every page is checked as it is read, as bbolt's ``tx.Check`` would (each page referenced once,
every page below the high water mark reachable or free), plus key order; a defect raises
:class:`~minietcd.mvcc.bolt_format.BoltFormatError`. The layout is in :mod:`.bolt_format`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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
    NO_FREELIST,
    PAGE_HDR,
    PAGE_SIZE,
    U64_LE,
    BoltFormatError,
    fnv64a,
)


@dataclass(frozen=True, slots=True)
class BoltMeta:
    page_size: int
    root: int
    freelist: int
    #: High water mark: the file's pages in use (``tx.Size()`` is this times the page size).
    pgid: int
    txid: int


def _parse_meta(data: bytes, page_size: int, pgid: int) -> BoltMeta | None:
    off = pgid * page_size + HDR_SIZE
    if len(data) < off + META_BODY.size + 8:
        return None
    body = data[off : off + META_BODY.size]
    magic, version, psize, _flags, root, _seq, freelist, high, txid = META_BODY.unpack(body)
    (checksum,) = U64_LE.unpack_from(data, off + META_BODY.size)
    if magic != BOLT_MAGIC or version != BOLT_VERSION:
        return None
    if checksum != 0 and checksum != fnv64a(body):
        return None
    return BoltMeta(psize, root, freelist, high, txid)


class _Reader:
    """Walks pages of one bbolt file, checking what bbolt's ``tx.Check`` checks."""

    def __init__(self, data: bytes, meta: BoltMeta) -> None:
        self.data = data
        self.meta = meta
        #: Page id -> referenced; every page of the file must end up here or in the freelist.
        self.reachable: set[int] = set()

    def page(self, pgid: int) -> tuple[int, int, memoryview]:
        """(flags, count, whole page including overflow) of page ``pgid``."""
        ps = self.meta.page_size
        if not 2 <= pgid < self.meta.pgid:
            raise BoltFormatError(f"bolt: page {pgid} out of bounds (high water {self.meta.pgid})")
        off = pgid * ps
        if off + HDR_SIZE > len(self.data):
            raise BoltFormatError(f"bolt: page {pgid} beyond the end of the file")
        pid, flags, count, overflow = PAGE_HDR.unpack_from(self.data, off)
        if pid != pgid:
            raise BoltFormatError(f"bolt: page {pgid} says it is page {pid}")
        end = off + (overflow + 1) * ps
        if pgid + overflow >= self.meta.pgid or end > len(self.data):
            raise BoltFormatError(f"bolt: page {pgid} overflows past the end ({overflow})")
        for i in range(pgid, pgid + overflow + 1):
            if i in self.reachable:
                raise BoltFormatError(f"bolt: page {i}: multiple references")
            self.reachable.add(i)
        return flags, count, memoryview(self.data)[off:end]

    def tree_items(self, pgid: int) -> Iterator[tuple[int, bytes, bytes]]:
        """Leaf items of the tree rooted at ``pgid``, in order."""
        flags, count, buf = self.page(pgid)
        if flags & BRANCH_PAGE:
            for i in range(count):
                pos, ksize, child = BRANCH_ELEM.unpack_from(buf, HDR_SIZE + i * ELEM_SIZE)
                start = HDR_SIZE + i * ELEM_SIZE + pos
                if start + ksize > len(buf):
                    raise BoltFormatError(f"bolt: branch page {pgid} element {i} out of bounds")
                yield from self.tree_items(child)
        elif flags & LEAF_PAGE:
            yield from _leaf_items(buf, count, f"page {pgid}")
        else:
            raise BoltFormatError(f"bolt: page {pgid} has type {flags:#x}, not branch or leaf")

    def freelist(self) -> set[int]:
        if self.meta.freelist == NO_FREELIST:
            return set()
        flags, count, buf = self.page(self.meta.freelist)
        if not flags & FREELIST_PAGE:
            raise BoltFormatError(f"bolt: freelist page {self.meta.freelist} has type {flags:#x}")
        start = 0
        if count == 0xFFFF:
            (count,) = U64_LE.unpack_from(buf, HDR_SIZE)
            start = 1
        if HDR_SIZE + (start + count) * 8 > len(buf):
            raise BoltFormatError("bolt: freelist longer than its page")
        ids = struct.unpack_from(f"<{count}Q", buf, HDR_SIZE + start * 8)
        free = set(ids)
        if len(free) != len(ids):
            raise BoltFormatError("bolt: freelist has a page twice")
        return free


def _leaf_items(buf: memoryview, count: int, where: str) -> Iterator[tuple[int, bytes, bytes]]:
    if HDR_SIZE + count * ELEM_SIZE > len(buf):
        raise BoltFormatError(f"bolt: {where} has more elements than fit")
    for i in range(count):
        flags, pos, ksize, vsize = LEAF_ELEM.unpack_from(buf, HDR_SIZE + i * ELEM_SIZE)
        start = HDR_SIZE + i * ELEM_SIZE + pos
        if start + ksize + vsize > len(buf):
            raise BoltFormatError(f"bolt: {where} element {i} out of bounds")
        yield flags, bytes(buf[start : start + ksize]), bytes(buf[start + ksize : start + ksize + vsize])


def _sorted_dict(
    items: Iterable[tuple[int, bytes, bytes]], where: str, *, buckets: bool
) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    last: bytes | None = None
    for flags, k, v in items:
        if last is not None and k <= last:
            raise BoltFormatError(f"bolt: {where}: keys out of order ({last!r} then {k!r})")
        if bool(flags & BUCKET_LEAF) != buckets:
            what = "a nested bucket" if buckets else "a plain value"
            raise BoltFormatError(f"bolt: {where}: key {k!r} is not {what}")
        out[k] = v
        last = k
    return out


def read_bolt_meta(data: bytes) -> BoltMeta:
    """The meta a bbolt reader would use: the valid one with the higher txid."""
    if len(data) < 2 * 1024:
        raise BoltFormatError(f"bolt: file too small ({len(data)} bytes)")
    first = _parse_meta(data, PAGE_SIZE, 0)
    page_size = first.page_size if first is not None else PAGE_SIZE
    metas = [m for m in (_parse_meta(data, page_size, 0), _parse_meta(data, page_size, 1)) if m]
    if not metas:
        raise BoltFormatError("bolt: no valid meta page (not a bbolt file?)")
    return max(metas, key=lambda m: m.txid)


def read_bolt(data: bytes) -> dict[bytes, dict[bytes, bytes]]:
    """Every bucket of a bbolt file: name -> key -> value.

    Checks what ``tx.Check`` does (each page referenced once, every page below the high water
    mark reachable or free) plus key order, and raises BoltFormatError on any defect. Nested
    buckets deeper than one level (which etcd never makes) are refused.
    """
    meta = read_bolt_meta(data)
    if meta.pgid * meta.page_size > len(data):
        raise BoltFormatError(f"bolt: file of {len(data)} bytes shorter than its {meta.pgid} pages")
    reader = _Reader(data, meta)
    reader.reachable.update((0, 1))
    free = reader.freelist()
    names = _sorted_dict(reader.tree_items(meta.root), "root bucket", buckets=True)
    out: dict[bytes, dict[bytes, bytes]] = {}
    for name, value in names.items():
        where = f"bucket {name!r}"
        if len(value) < BUCKET_HDR.size:
            raise BoltFormatError(f"bolt: {where} has a short header")
        root, _seq = BUCKET_HDR.unpack_from(value)
        if root == 0:
            inline = memoryview(value)[BUCKET_HDR.size :]
            if len(inline) < HDR_SIZE:
                raise BoltFormatError(f"bolt: {where} has a short inline page")
            _pid, flags, count, _ovf = PAGE_HDR.unpack_from(inline)
            if not flags & LEAF_PAGE:
                raise BoltFormatError(f"bolt: {where}: inline page is not a leaf")
            items: Iterable[tuple[int, bytes, bytes]] = _leaf_items(inline, count, where)
        else:
            items = reader.tree_items(root)
        out[name] = _sorted_dict(items, where, buckets=False)
    if meta.freelist != NO_FREELIST:
        for pgid in range(meta.pgid):
            if pgid in reader.reachable and pgid in free:
                raise BoltFormatError(f"bolt: page {pgid}: reachable freed")
            if pgid not in reader.reachable and pgid not in free:
                raise BoltFormatError(f"bolt: page {pgid}: unreachable unfreed")
    return out
