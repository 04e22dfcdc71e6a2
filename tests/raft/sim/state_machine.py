"""The tiny replicated state machine each simulated node runs.

It is an append-only list of the client payloads it applied, plus a running hash over *every*
applied entry (index, term, type, data), no-ops and membership changes included. Two nodes
that applied the same prefix of the log have the same ``(applied, hash)``; the checker
compares them against the first node that applied each index (State Machine Safety).

A snapshot is the serialised state: ``b"<applied> <hash>\\n"`` followed by the payloads, one a
line. Restoring discards everything and loads the image (hashicorp/raft fsm.go: "restore
discards all state").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from minietcd.raft.types import ConfState, Entry


def chain(prev: bytes, e: Entry) -> bytes:
    """The hash after applying ``e`` on top of a state whose hash is ``prev``."""
    h = hashlib.blake2b(prev, digest_size=12)
    h.update(f"|{e.index}/{e.term}/{int(e.type)}|".encode())
    h.update(e.data)
    return h.digest()


@dataclass(slots=True)
class StateMachine:
    applied: int = 0  # index of the last applied entry
    hash: bytes = b""  # chain() over every applied entry, in order
    payloads: list[bytes] = field(default_factory=list)  # applied client data, in order
    conf_state: ConfState = field(default_factory=ConfState)  # membership as of ``applied``

    def apply(self, e: Entry) -> None:
        if e.index != self.applied + 1:
            raise AssertionError(f"applied index {e.index} after {self.applied}: not in order")
        self.applied = e.index
        self.hash = chain(self.hash, e)
        if e.data and e.type == 0:
            self.payloads.append(e.data)

    def snapshot_data(self) -> bytes:
        head = f"{self.applied} {self.hash.hex()}\n".encode()
        return head + b"\n".join(self.payloads)

    @classmethod
    def restore(cls, data: bytes, conf_state: ConfState) -> StateMachine:
        if not data:
            return cls(conf_state=conf_state)
        head, _, body = data.partition(b"\n")
        applied, digest = head.decode().split()
        payloads = body.split(b"\n") if body else []
        return cls(int(applied), bytes.fromhex(digest), payloads, conf_state)
