"""Bounded, closable FIFO that joins the stages of one proxied direction.

Toxiproxy wires its toxics together with Go channels: mostly unbuffered, so a
slow toxic pushes back on the socket reader, and closed to signal end of
stream, so every later receive sees EOF again. ``Channel`` gives asyncio the
same two properties. It also offers ``force`` because the control plane
(adding or removing a toxic on a live connection) must be able to hand over a
chunk it rescued from an interrupted toxic without waiting on the data plane,
or an API call could hang behind a peer that stopped reading.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Chunk:
    """Bytes read from a socket in one go, stamped with the loop time of the read.

    The timestamp lets the latency toxic delay data relative to its arrival
    rather than to when the toxic got round to it, as Toxiproxy's does.
    """

    data: bytes
    timestamp: float


class Channel:
    """FIFO of chunks with a soft capacity and a sticky end-of-stream.

    ``get`` returns ``None`` once the channel is closed and drained, and keeps
    returning it, like receiving from a closed Go channel. Cancelling ``get``
    or ``put`` never loses or duplicates a chunk: items only move in the
    synchronous tail of each call, after its last await.
    """

    __slots__ = ("_capacity", "_closed", "_getters", "_items", "_putters")

    def __init__(self, capacity: int = 1) -> None:
        # Go's unbuffered channel is a rendezvous; one slot is the closest
        # asyncio equivalent that still propagates backpressure.
        self._capacity = max(1, capacity)
        self._items: deque[Chunk] = deque()
        self._closed = False
        self._getters: list[asyncio.Future[None]] = []
        self._putters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()

    @staticmethod
    async def _wait(waiters: list[asyncio.Future[None]]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    async def get(self) -> Chunk | None:
        while not self._items:
            if self._closed:
                return None
            await self._wait(self._getters)
        item = self._items.popleft()
        self._wake(self._putters)
        return item

    async def put(self, item: Chunk) -> None:
        """Append ``item``, waiting while the channel is full.

        Data put after close is dropped: the stream it belonged to has ended.
        """
        while len(self._items) >= self._capacity and not self._closed:
            await self._wait(self._putters)
        self.force(item)

    def force(self, item: Chunk) -> None:
        """Append ``item`` even past capacity (control-plane hand-overs only)."""
        if self._closed:
            return
        self._items.append(item)
        self._wake(self._getters)

    def close(self) -> None:
        """Mark end of stream; queued chunks are still delivered first."""
        self._closed = True
        self._wake(self._getters)
        self._wake(self._putters)

    def take_all(self) -> tuple[list[Chunk], bool]:
        """Remove and return everything queued, and whether the stream has ended."""
        items = list(self._items)
        self._items.clear()
        self._wake(self._putters)
        return items, self._closed
