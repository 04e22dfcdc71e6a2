"""Joins pairs of connected sockets in one thread, with ``splice(2)``: bytes go from one socket
to the other through a kernel pipe and never enter Python. The client URL's multiplexer uses it
for gRPC connections with ``MINIETCD_SPLICE=thread``; the default forwards them on the event
loop, which measured better (docs/benchmarks.md: the thread saves the loop's CPU but waits for
the GIL on every wake-up).

One :class:`Splicer` thread serves every joined pair of a member. Each direction of a pair has
its own pipe: ``splice(src -> pipe)`` then ``splice(pipe -> dst)``; when ``dst`` cannot take more,
its direction waits for ``EPOLLOUT`` and stops reading ``src`` (backpressure); an end of stream
or an error on either side closes the pair (HTTP/2 has no half-close, and grpcio keeps its end
of a half-closed internal socket open). The system calls release the GIL; the Python between
them is a few lines per wake-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import Final

log = logging.getLogger("minietcd.server.splicer")

_FLAGS: Final = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_CHUNK: Final = 1 << 16  # a pipe's default capacity
_IN: Final = select.EPOLLIN | select.EPOLLRDHUP
_OUT: Final = select.EPOLLOUT


class _Direction:
    __slots__ = ("buffered", "dst", "eof", "pipe_r", "pipe_w", "src", "waiting_out")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src.fileno(), dst.fileno()
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.buffered = 0  # bytes in the pipe not yet written to dst
        self.eof = False  # src ended and everything was passed on
        self.waiting_out = False  # dst was full: wait for EPOLLOUT, stop reading src


class _Pair:
    __slots__ = ("a", "ab", "b", "ba", "closed", "masks", "on_close")

    def __init__(self, a: socket.socket, b: socket.socket, on_close: Callable[[], object]) -> None:
        self.a, self.b = a, b
        self.on_close = on_close
        self.ab = _Direction(a, b)
        self.ba = _Direction(b, a)
        self.closed = False
        #: The epoll mask each socket is registered with (changed only when it must be).
        self.masks = {a.fileno(): _IN, b.fileno(): _IN}


class Splicer:
    """The splicing thread of one member: :meth:`join` hands it two connected sockets."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._lock = threading.Lock()
        self._new: list[_Pair] = []
        self._stopping = False
        self._by_fd: dict[int, _Pair] = {}
        self._thread = threading.Thread(target=self._run, name="minietcd-splicer", daemon=True)
        self._thread.start()

    def join(self, a: socket.socket, b: socket.socket, on_close: Callable[[], object] = lambda: None) -> None:
        """Splice ``a`` and ``b`` both ways until either closes (then ``on_close()``, in the
        splicer's thread); the splicer owns them now."""
        a.setblocking(False)
        b.setblocking(False)
        with self._lock:
            self._new.append(_Pair(a, b, on_close))
        os.write(self._wake_w, b"j")

    def close(self) -> None:
        """Close every pair and end the thread."""
        with self._lock:
            self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"s")
        self._thread.join(timeout=5)

    @property
    def open_pairs(self) -> int:
        return len({id(p) for p in self._by_fd.values()})

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                for fd, events in self._epoll.poll():
                    if fd == self._wake_r:
                        if self._woken():
                            return
                        continue
                    pair = self._by_fd.get(fd)
                    if pair is None or pair.closed:
                        continue
                    try:
                        self._ready(pair, fd, events)
                    except OSError as e:
                        log.debug("splicer: connection closed: %s", e)
                        self._close(pair)
                    except Exception:  # a bug: drop this pair, keep serving the others
                        log.exception("splicer: unexpected error; closing the connection")
                        self._close(pair)
        finally:
            for pair in list(self._by_fd.values()):
                self._close(pair)
            self._epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _woken(self) -> bool:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        with self._lock:
            new, self._new = self._new, []
            stopping = self._stopping
        for pair in new:
            if stopping:
                self._close(pair)
                continue
            for s in (pair.a, pair.b):
                self._by_fd[s.fileno()] = pair
                self._epoll.register(s.fileno(), _IN)
            # Bytes may already wait on either side (a client's first frames).
            try:
                self._pump(pair, pair.ab)
                self._pump(pair, pair.ba)
            except Exception as e:
                if not isinstance(e, OSError):
                    log.exception("splicer: unexpected error; closing the connection")
                self._close(pair)
        return stopping

    def _ready(self, pair: _Pair, fd: int, events: int) -> None:
        # fd's incoming direction (fd is its src) and outgoing one (fd is its dst).
        incoming, outgoing = (pair.ab, pair.ba) if fd == pair.ab.src else (pair.ba, pair.ab)
        if events & (select.EPOLLHUP | select.EPOLLERR):  # hung up: pass on what it sent, close
            with contextlib.suppress(OSError):
                self._pump(pair, incoming)
            self._close(pair)
            return
        if events & _OUT and outgoing.waiting_out:
            outgoing.waiting_out = False
            self._pump(pair, outgoing)
        if events & (select.EPOLLIN | select.EPOLLRDHUP):
            self._pump(pair, incoming)

    def _pump(self, pair: _Pair, d: _Direction) -> None:
        """Move what can be moved along ``d`` without blocking: one read of ``src`` (epoll is
        level-triggered: more bytes wake us again), then write until ``dst`` is full."""
        read = False
        while not pair.closed:
            if d.buffered:
                try:
                    d.buffered -= os.splice(d.pipe_r, d.dst, d.buffered, flags=_FLAGS)
                except BlockingIOError:
                    d.waiting_out = True
                    break
                continue
            if d.eof or read:
                break
            try:
                n = os.splice(d.src, d.pipe_w, _CHUNK, flags=_FLAGS)
            except BlockingIOError:
                break
            read = True
            if n == 0:  # src finished: HTTP/2 has no half-close, so the connection is over
                d.eof = True
                self._close(pair)
                break
            d.buffered = n
        if not pair.closed:
            self._interest(pair)

    def _interest(self, pair: _Pair) -> None:
        for d, other in ((pair.ab, pair.ba), (pair.ba, pair.ab)):
            # d.src: read it unless its bytes wait for d.dst or it ended; write to it when the
            # other direction waits for room in it.
            mask = 0 if (d.waiting_out or d.eof) else _IN
            if other.waiting_out:
                mask |= _OUT
            if pair.masks[d.src] != mask:
                pair.masks[d.src] = mask
                with contextlib.suppress(OSError):
                    self._epoll.modify(d.src, mask)

    def _close(self, pair: _Pair) -> None:
        if pair.closed:
            return
        pair.closed = True
        pair.on_close()
        for s in (pair.a, pair.b):
            fd = s.fileno()
            if self._by_fd.pop(fd, None) is not None:
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
            s.close()
        for d in (pair.ab, pair.ba):
            os.close(d.pipe_r)
            os.close(d.pipe_w)
