"""Revisions: the clock of the key space (etcd ``mvcc/revision.go``).

Every write transaction gets one *main* revision; each change inside it gets an increasing
*sub* revision, so ``(main, sub)`` names one change and orders all changes totally. Readers
only ever see whole main revisions: a transaction's changes appear atomically.

etcd stores each change in its backend under the 17-byte key ``main(8, big-endian) '_'
sub(8, big-endian)``, with one extra ``'t'`` byte for a tombstone (a delete). We keep the
same encoding because :meth:`KVStore.hash_kv` hashes those exact bytes, like etcd's HashKV.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from minietcd.errors import MvccInvariantError

#: Byte length of an encoded revision: main, the ``'_'`` separator, sub.
REV_BYTES_LEN = 8 + 1 + 8
#: Byte length of an encoded revision carrying the tombstone mark.
MARKED_REV_BYTES_LEN = REV_BYTES_LEN + 1
#: The mark etcd appends to the revision key of a delete.
TOMBSTONE_MARK = b"t"

#: Revisions are int64 in etcd's API; nothing in the store may exceed this.
MAX_INT64 = (1 << 63) - 1
MIN_INT64 = -(1 << 63)

_REV = struct.Struct(">QcQ")


class Revision(NamedTuple):
    """One change in the key space.

    A ``NamedTuple`` rather than a slotted dataclass on purpose: the index compares and
    hashes revisions in its hottest loops, and tuple comparison runs in C. The tuple order
    *is* etcd's ``GreaterThan``: main first, then sub.
    """

    #: The main revision: one per write transaction, shared by all its changes.
    main: int
    #: The position of this change inside its transaction (0, 1, 2, ...).
    sub: int = 0

    def to_bytes(self, tombstone: bool = False) -> bytes:
        """etcd's backend key for this revision (``revToBytes`` + ``appendMarkTombstone``).

        Go writes ``uint64(main)``; masking to 64 bits reproduces that for any int64.
        """
        raw = _REV.pack(self.main & 0xFFFF_FFFF_FFFF_FFFF, b"_", self.sub & 0xFFFF_FFFF_FFFF_FFFF)
        return raw + TOMBSTONE_MARK if tombstone else raw

    @classmethod
    def from_bytes(cls, data: bytes) -> Revision:
        """Parse a (possibly tombstone-marked) backend key (``bytesToRev``)."""
        if len(data) not in (REV_BYTES_LEN, MARKED_REV_BYTES_LEN):
            raise MvccInvariantError(f"revision bytes of length {len(data)}")
        main, _sep, sub = _REV.unpack_from(data)
        return cls(_to_int64(main), _to_int64(sub))


def is_tombstone_bytes(data: bytes) -> bool:
    """Whether a backend revision key carries the tombstone mark (etcd ``isTombstone``)."""
    return len(data) == MARKED_REV_BYTES_LEN and data[-1:] == TOMBSTONE_MARK


def _to_int64(u: int) -> int:
    # Go's int64(uint64) conversion: reinterpret the top bit as the sign.
    return u - (1 << 64) if u >= (1 << 63) else u


#: The zero revision: "none" (an empty generation's created revision, a new key's modified).
ZERO_REV = Revision(0, 0)
