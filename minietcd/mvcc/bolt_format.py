"""bbolt's file format (bbolt v1.3.6, the one etcd 3.4 vendors): its constants and structs.

bbolt on-disk layout (all integers little-endian: bbolt writes its structs in native order
and etcd ships on little-endian hosts; etcd's own keys and values are big-endian inside)::

    file     = page 0 .. page (meta.pgid - 1), each PAGE_SIZE bytes; a page with overflow n
               spans n + 1 consecutive pages (one node larger than a page)
    page     = header | body
    header   = id u64 | flags u16 | count u16 | overflow u32                       (16 bytes)
               flags: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
    meta     = (pages 0 and 1, body of a meta page)
               magic u32 = 0xED0CDAED | version u32 = 2 | page_size u32 | flags u32 |
               root bucket (root pgid u64 | sequence u64) | freelist pgid u64 |
               pgid u64 (high water mark: pages in the file) | txid u64 |
               checksum u64 = FNV-1a 64 of the 56 bytes before it
               A reader uses the valid meta with the higher txid; both here describe the
               same tree (txids 0 and 1, as bbolt's own ``init`` writes them).
    freelist = count pgids u64 (count 0xFFFF: the first u64 is the real count)
    leaf     = count x element (flags u32 | pos u32 | ksize u32 | vsize u32), then the keys
               and values; ``pos`` is the distance from the element itself to its key, the
               value follows the key. Element flag 0x01 marks a nested bucket.
    branch   = count x element (pos u32 | ksize u32 | child pgid u64), then the keys; each
               key is the first key of its child, children in key order.
    bucket   = a leaf value: root pgid u64 | sequence u64, and if root is 0 (an *inline*
               bucket) a whole leaf page (header with id 0) follows in the value itself.

:mod:`.bolt_writer` writes such a file, :mod:`.bolt_reader` reads and checks one;
:mod:`.boltdb` puts etcd's buckets in it.
"""

from __future__ import annotations

import struct

from minietcd.errors import MvccSnapshotError

# --- bbolt constants (bbolt v1.3.6: page.go, db.go, bucket.go) ----------------------------------

PAGE_SIZE = 4096
BOLT_MAGIC = 0xED0CDAED
BOLT_VERSION = 2

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
#: Leaf element flag: the value is a nested bucket.
BUCKET_LEAF = 0x01
#: meta.freelist when the freelist is not stored (bbolt's NoFreelistSync).
NO_FREELIST = 0xFFFF_FFFF_FFFF_FFFF

PAGE_HDR = struct.Struct("<QHHI")
LEAF_ELEM = struct.Struct("<IIII")
BRANCH_ELEM = struct.Struct("<IIQ")
BUCKET_HDR = struct.Struct("<QQ")
#: Meta without its checksum: the bytes the checksum covers.
META_BODY = struct.Struct("<IIIIQQQQQ")
U64_LE = struct.Struct("<Q")

HDR_SIZE = PAGE_HDR.size  # 16
ELEM_SIZE = LEAF_ELEM.size  # 16, the same for branch elements
assert BRANCH_ELEM.size == ELEM_SIZE


class BoltFormatError(MvccSnapshotError):
    """Bytes that are not a bbolt file, or not one holding etcd's buckets as expected."""


# --- FNV-1a 64 (the meta checksum, Go's hash/fnv New64a) ---------------------------------------

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
U64_MASK = (1 << 64) - 1


def fnv64a(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & U64_MASK
    return h
