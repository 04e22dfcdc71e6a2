"""One client's HTTP/2 connection (RFC 9113), serving gRPC calls on the event loop.

What a gRPC server needs of HTTP/2, and no more: the preface and SETTINGS, HEADERS (with
CONTINUATION, padding and priority fields skipped), DATA, flow control both ways, PING,
RST_STREAM and GOAWAY, each checked as RFC 9113 says (a violation: GOAWAY, and only this
connection ends). Flow control in: the connection's window is given back as data arrives, a
unary call's too (its request is at most ``--max-request-bytes``, checked per message), a
request stream's only as its handler reads (call.py), as grpc-go does. Out: what we send waits
for the client's windows and for the transport's buffer (``pause_writing``), which is what slows
a Watch or a Snapshot down to a slow reader; while that buffer is full the connection is not
read either, so a client cannot make us queue answers (PING ACKs, refusals) it does not read.
No server push, no dynamic table in what we send (frames.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import grpc

from minietcd.server.h2grpc import frames
from minietcd.server.h2grpc.call import Call, Context, parse_timeout
from minietcd.server.h2grpc.frames import ErrorCode, Flag, Setting, Type
from minietcd.server.h2grpc.headers import HeaderDecoder, HeaderListTooLarge

if TYPE_CHECKING:
    from minietcd.server.h2grpc.server import MethodLookup

log = logging.getLogger("minietcd.server.h2grpc")

#: Our receive windows. The connection's is large: data is taken in as it arrives. A stream's is
#: what a request stream may queue ahead of a handler that does not read (given back as read),
#: and what a unary request sends before our first WINDOW_UPDATE (given back as it arrives).
RECV_WINDOW = 1 << 22
STREAM_WINDOW = 1 << 18
#: How often open calls are checked against their deadlines (grpc-timeout): a call is
#: cancelled at most this late (its client gave up at the deadline itself). One check per
#: connection rather than a timer per call, which cost 4% of a put's time on the loop.
DEADLINE_CHECK = 0.05
#: The most header bytes (decoded, RFC 7541 section 4.1's count) a request may carry: what
#: grpcio's server allowed before this engine (16 KiB); grpc-go's is 16 MiB, which Python could
#: not afford (a block of references to one large table entry decodes to many copies of it).
MAX_HEADER_LIST = 16 << 10
#: The most bytes of one header block (HEADERS and its CONTINUATIONs) read at all: decoding a
#: block takes the event loop, so it must stay short (32 KiB of the slowest Huffman codes: ms).
MAX_HEADER_BLOCK = 32 << 10
#: SETTINGS_MAX_FRAME_SIZE's legal range (RFC 9113 section 6.5.2).
_MAX_FRAME_RANGE = range(frames.DEFAULT_MAX_FRAME, (1 << 24))
#: How long a closed connection may take to send its last bytes before it is cut.
_CLOSE_TIMEOUT = 1.0


class H2ConnectionError(Exception):
    """A connection error (RFC 9113 section 5.4.1): GOAWAY with ``code``, then close."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


class H2Connection(asyncio.Protocol):
    def __init__(
        self,
        lookup: MethodLookup,
        max_receive: int,
        on_close: Callable[[H2Connection], None],
        max_streams: int = 2**32 - 1,
    ) -> None:
        self._lookup = lookup
        self.max_receive = max_receive
        self._max_streams = max_streams  # --max-concurrent-streams
        self._on_close = on_close
        self.transport: asyncio.Transport | None = None
        self._peer = ""
        self._buf = b""
        self._started = False
        self._decoder = HeaderDecoder(MAX_HEADER_LIST)
        self._calls: dict[int, Call] = {}
        self._last_stream = 0
        self._headers: tuple[int, int, bytearray] | None = None  # a header block awaiting CONTINUATION
        self._recv_unacked = 0
        self.peer_initial_window = frames.DEFAULT_WINDOW
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME
        self._send_window = frames.DEFAULT_WINDOW
        self._blocked: set[Call] = set()  # calls waiting for the connection's send window
        self._writable = asyncio.Event()
        self._writable.set()
        self.loop = asyncio.get_running_loop()
        self._out: list[bytes] = []  # frames written in this pass of the loop, sent together
        self._pending: dict[Call, bytearray] = {}  # each call's messages of this pass, one DATA run
        self._flushing = False
        self._deadlines: asyncio.TimerHandle | None = None  # the next deadline check, if any
        self._going_away = False  # GOAWAY sent: no new calls
        self._drained = asyncio.Event()  # no call open (set while going away)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            host, port = peer[0], peer[1]
            self._peer = f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"
        ours = {Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW, Setting.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST}
        if self._max_streams < 2**32 - 1:  # etcd's default, math.MaxUint32, is no limit
            ours[Setting.MAX_CONCURRENT_STREAMS] = self._max_streams
        transport.write(frames.settings(ours) + frames.window_update(0, RECV_WINDOW - frames.DEFAULT_WINDOW))

    def connection_lost(self, exc: Exception | None) -> None:
        for call in list(self._calls.values()):
            call.cancel()
        self._calls.clear()
        if self._deadlines is not None:
            self._deadlines.cancel()
        self._writable.set()
        self._drained.set()
        self._on_close(self)

    def pause_writing(self) -> None:
        """The client does not read what we send: stop reading what it sends (PINGs and refused
        requests would otherwise queue answers without bound), and hold senders."""
        self._writable.clear()
        if self.transport is not None:
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        if self.transport is not None:
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        try:
            if not self._started:
                if len(buf) < len(frames.PREFACE):
                    self._buf = buf
                    return
                if not buf.startswith(frames.PREFACE):
                    raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "bad connection preface")
                pos = len(frames.PREFACE)
                self._started = True
            end = len(buf)
            while end - pos >= frames.FRAME_HEADER:
                length = int.from_bytes(buf[pos : pos + 3], "big")
                if length > frames.DEFAULT_MAX_FRAME:
                    raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "frame over SETTINGS_MAX_FRAME_SIZE")
                if end - pos < frames.FRAME_HEADER + length:
                    break
                ftype, flags = buf[pos + 3], buf[pos + 4]
                stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                payload = buf[pos + 9 : pos + 9 + length]
                pos += frames.FRAME_HEADER + length
                self._frame(ftype, flags, stream, payload)
        except H2ConnectionError as e:
            self._fail(e)
            return
        except Exception as e:  # a bug met by some input: this connection ends, the member goes on
            log.warning("h2grpc: closing the connection from %s: %r", self._peer, e)
            log.debug("h2grpc: the error behind the line above", exc_info=e)
            self._fail(H2ConnectionError(ErrorCode.INTERNAL_ERROR, "internal error"))
            return
        self._buf = buf[pos:]
        self._give_back()

    # -- frames in -----------------------------------------------------------------------------

    def _frame(self, ftype: int, flags: int, stream: int, payload: bytes) -> None:
        if self._headers is not None and ftype != Type.CONTINUATION:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION")
        if ftype == Type.DATA:
            self._data(flags, stream, payload)
        elif ftype == Type.HEADERS:
            self._header_frame(flags, stream, payload)
        elif ftype == Type.CONTINUATION:
            if self._headers is None or self._headers[0] != stream:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
            self._headers[2].extend(payload)
            if len(self._headers[2]) > MAX_HEADER_BLOCK:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "header block too large")
            if flags & Flag.END_HEADERS:
                sid, first_flags, block = self._headers
                self._headers = None
                self._request(sid, first_flags, bytes(block))
        elif ftype == Type.SETTINGS:
            if stream:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & Flag.ACK:
                if payload:
                    raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            else:
                self._settings(payload)
        elif ftype == Type.WINDOW_UPDATE:
            if len(payload) != 4:
                raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE of a bad length")
            self._window_update(stream, int.from_bytes(payload, "big") & 0x7FFFFFFF)
        elif ftype == Type.PING:
            if stream:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING of a bad length")
            if not flags & Flag.ACK:
                self.write(frames.frame(Type.PING, Flag.ACK, 0, payload))
        elif ftype == Type.RST_STREAM:
            if len(payload) != 4:
                raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM of a bad length")
            self._idle_check(stream, "RST_STREAM")
            call = self._calls.get(stream)
            if call is not None:
                call.cancel()
                self.forget(call)
        elif ftype == Type.PUSH_PROMISE:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a client may not push")
        # PRIORITY, GOAWAY (the client closes when its calls are done) and unknown types: ignored

    def _idle_check(self, stream: int, what: str) -> None:
        """A frame that names a stream the client never opened is a connection error."""
        if stream == 0 or stream > self._last_stream:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"{what} on idle stream {stream}")

    def _data(self, flags: int, stream: int, payload: bytes) -> None:
        size = len(payload)  # padding included: flow control counts the whole frame
        self._recv_unacked += size
        if flags & Flag.PADDED:
            payload = _unpad(payload)
        call = self._calls.get(stream)
        if call is None:
            self._idle_check(stream, "DATA")
            return  # a stream we closed: its data still counted for the connection's window
        if not flags & Flag.END_STREAM:
            # A request stream's messages are given back as the handler takes them (call.py);
            # what is not message (padding) at once. Other calls: all at once.
            self.credit(call, size - len(payload) if call.reads_on_demand else size)
        call.receive(payload, bool(flags & Flag.END_STREAM))

    def credit(self, call: Call, size: int) -> None:
        """``size`` more bytes of ``call``'s stream taken in: its WINDOW_UPDATE once half a window."""
        if call.finished or size <= 0:
            return
        call.recv_unacked += size
        if call.recv_unacked >= STREAM_WINDOW // 2:
            self.write(frames.window_update(call.id, call.recv_unacked))
            call.recv_unacked = 0

    def _header_frame(self, flags: int, stream: int, payload: bytes) -> None:
        if flags & Flag.PADDED:
            payload = _unpad(payload)
        if flags & Flag.PRIORITY:
            payload = payload[5:]
        if len(payload) > MAX_HEADER_BLOCK:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "header block too large")
        if not flags & Flag.END_HEADERS:
            self._headers = (stream, flags, bytearray(payload))
            return
        self._request(stream, flags, payload)

    def _request(self, stream: int, flags: int, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)
            too_large = ""
        except HeaderListTooLarge as e:  # decoded (tables in step): only this request is refused
            headers, too_large = [], str(e)
        except Exception as e:  # headers.HPACKError, or whatever else bad bytes provoke
            raise H2ConnectionError(ErrorCode.COMPRESSION_ERROR, f"header block: {e!r}") from e
        known = self._calls.get(stream)
        if known is not None:  # trailers from the client: they must end the stream
            if flags & Flag.END_STREAM:
                known.receive(b"", True)
            else:
                known.cancel()
                self.forget(known)
                self.write(frames.rst_stream(stream, ErrorCode.PROTOCOL_ERROR))
            return
        if stream % 2 == 0 or stream <= self._last_stream:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"HEADERS on stream {stream}")
        self._last_stream = stream
        if self._going_away or len(self._calls) >= self._max_streams:  # the client retries
            self.write(frames.rst_stream(stream, ErrorCode.REFUSED_STREAM))
            return
        if too_large:
            self._refuse(stream, flags, grpc.StatusCode.RESOURCE_EXHAUSTED, f"grpc: {too_large}")
            return
        path, content_type, timeout = b"", b"", b""
        for k, v in headers:
            if k == b":path":
                path = v
            elif k == b"content-type":
                content_type = v
            elif k == b"grpc-timeout":
                timeout = v
        method = path.decode("latin-1")
        if not _is_grpc(content_type):
            shown = content_type.decode("latin-1")[:100]
            why = f"transport: received unexpected content-type {shown!r}"
            self._refuse(stream, flags, grpc.StatusCode.INTERNAL, why)
            return
        seconds = parse_timeout(timeout) if timeout else None
        if timeout and seconds is None:
            shown = timeout.decode("latin-1")[:100]
            self._refuse(stream, flags, grpc.StatusCode.INTERNAL, f"transport: malformed time-out: {shown!r}")
            return
        handler, error = self._lookup(method)
        if handler is None:
            self._refuse(stream, flags, grpc.StatusCode.UNIMPLEMENTED, error[:1024])
            return
        call = Call(self, stream, method, handler, Context(headers, self._peer))
        self._calls[stream] = call
        if seconds is not None:
            call.deadline = self.loop.time() + seconds
            if self._deadlines is None:
                self._deadlines = self.loop.call_later(DEADLINE_CHECK, self._check_deadlines)
        if flags & Flag.END_STREAM:
            call.receive(b"", True)

    def _check_deadlines(self) -> None:
        self._deadlines = None
        now = self.loop.time()
        pending = False
        for call in list(self._calls.values()):
            if call.deadline:
                if call.deadline <= now:
                    call.expire()
                else:
                    pending = True
        if pending:
            self._deadlines = self.loop.call_later(DEADLINE_CHECK, self._check_deadlines)

    def _refuse(self, stream: int, flags: int, code: grpc.StatusCode, message: str) -> None:
        """Answer a request that gets no call: its status alone (trailers-only)."""
        self.write_headers(stream, frames.RESPONSE_HEADERS + frames.status_block(code.value[0], message))
        if not flags & Flag.END_STREAM:
            self.write(frames.rst_stream(stream, ErrorCode.NO_ERROR))

    def _settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS of a bad length")
        for key, value in frames.parse_settings(payload).items():
            if key == Setting.INITIAL_WINDOW_SIZE:
                if value > frames.MAX_WINDOW:
                    raise H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for call in self._calls.values():
                    call.send_window += delta
                    if call.send_window > frames.MAX_WINDOW:
                        raise H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "a stream window overflows")
                    _wake(call)
            elif key == Setting.MAX_FRAME_SIZE:
                if value not in _MAX_FRAME_RANGE:
                    raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}")
                self._peer_max_frame = value
        self.write(frames.frame(Type.SETTINGS, Flag.ACK, 0))

    def _window_update(self, stream: int, increment: int) -> None:
        if stream == 0:
            if increment == 0:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > frames.MAX_WINDOW:
                raise H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "the connection window overflows")
            blocked, self._blocked = self._blocked, set()
            for call in blocked:
                _wake(call)
            return
        self._idle_check(stream, "WINDOW_UPDATE")
        target = self._calls.get(stream)
        if target is None:
            return
        target.send_window += increment
        if increment == 0 or target.send_window > frames.MAX_WINDOW:  # a stream error (6.9, 6.9.1)
            code = ErrorCode.PROTOCOL_ERROR if increment == 0 else ErrorCode.FLOW_CONTROL_ERROR
            target.cancel()
            self.forget(target)
            self.write(frames.rst_stream(stream, code))
            return
        _wake(target)

    def _give_back(self) -> None:
        """The connection's WINDOW_UPDATE for what was taken in, once half a window's worth has
        been (a stream's own is given back as its data arrives: ``_data``)."""
        if self._recv_unacked >= RECV_WINDOW // 2:
            self.write(frames.window_update(0, self._recv_unacked))
            self._recv_unacked = 0

    # -- frames out ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data``; everything queued in one pass of the event loop goes out in one write
        (64 clients' answers to one applied batch: one system call, not 64)."""
        self._out.append(data)
        self._flush_soon()

    def write_headers(self, stream: int, block: bytes) -> None:
        """A header block that ends ``stream`` (trailers), in frames the client accepts: HEADERS,
        then CONTINUATIONs when the block is larger than its SETTINGS_MAX_FRAME_SIZE."""
        size = self._peer_max_frame
        if len(block) <= size:
            self.write(frames.frame(Type.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, stream, block))
            return
        chunks = [block[i : i + size] for i in range(0, len(block), size)]
        self.write(frames.frame(Type.HEADERS, Flag.END_STREAM, stream, chunks[0]))
        for i, chunk in enumerate(chunks[1:], start=2):
            last = Flag.END_HEADERS if i == len(chunks) else 0
            self.write(frames.frame(Type.CONTINUATION, last, stream, chunk))

    def _flush(self) -> None:
        self._flushing = False
        if self._pending:
            for call, pending in self._pending.items():
                self._out.append(self._data_frames(call.id, pending))
            self._pending.clear()
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    async def send_data(self, call: Call, data: bytes) -> None:
        """DATA frames of ``data`` for ``call``, as the windows and the transport allow."""
        n = len(data)
        fits = n <= self._send_window and n <= call.send_window and n <= self._peer_max_frame
        if fits and self._writable.is_set():
            self._send_window -= n  # the usual answer: one frame, sent at once
            call.send_window -= n
            self._queue_data(call, data)
            return
        view = memoryview(data)
        while view:
            if not self._writable.is_set():
                await self._writable.wait()
            if call.finished or self.transport is None or self.transport.is_closing():
                raise asyncio.CancelledError()
            n = min(len(view), self._send_window, call.send_window, self._peer_max_frame)
            if n <= 0:
                call.window_open = call.window_open or asyncio.Event()
                call.window_open.clear()
                if self._send_window <= 0:
                    self._blocked.add(call)
                await call.window_open.wait()
                continue
            self._send_window -= n
            call.send_window -= n
            self._queue_data(call, view[:n])
            view = view[n:]

    def _queue_data(self, call: Call, data: bytes | memoryview) -> None:
        """``call``'s message bytes, already counted against the windows. A call's messages of
        one pass of the loop go out together, as few DATA frames as the client's frame size
        allows (a Watch stream's hundred events of one put: one frame, not a hundred), as grpc
        core's server coalesces them."""
        pending = self._pending.get(call)
        if pending is None:
            self._pending[call] = bytearray(data)
        else:
            pending += data
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._flushing:
            self._flushing = True
            self.loop.call_soon(self._flush)

    def take_pending(self, call: Call) -> None:
        """Queue ``call``'s pending messages now (its trailers come next, and must follow them)."""
        pending = self._pending.pop(call, None)
        if pending:
            self._out.append(self._data_frames(call.id, pending))

    def _data_frames(self, stream: int, data: bytearray) -> bytes:
        size = self._peer_max_frame
        if len(data) <= size:
            return frames.frame(Type.DATA, 0, stream, bytes(data))
        chunks = (bytes(data[i : i + size]) for i in range(0, len(data), size))
        return b"".join(frames.frame(Type.DATA, 0, stream, chunk) for chunk in chunks)

    def forget(self, call: Call) -> None:
        self._pending.pop(call, None)
        self._calls.pop(call.id, None)
        self._blocked.discard(call)
        if self._going_away and not self._calls:
            self._drained.set()

    async def drain(self) -> None:
        """Tell the client no new calls will be taken (GOAWAY, grpc-go's GracefulStop), then wait
        until the calls it has open are done."""
        if not self._going_away:
            self._going_away = True
            self.write(frames.goaway(self._last_stream, ErrorCode.NO_ERROR))
            if not self._calls:
                self._drained.set()
        await self._drained.wait()

    def close(self) -> None:
        """The member is stopping: say so (GOAWAY) and drop the connection."""
        self._close_with(frames.goaway(self._last_stream, ErrorCode.NO_ERROR))

    def _fail(self, e: H2ConnectionError) -> None:
        log.debug("h2grpc: connection error from %s: %s", self._peer, e)
        self._close_with(frames.goaway(self._last_stream, e.code, str(e).encode()[:256]))

    def _close_with(self, last: bytes) -> None:
        """Send what is queued and ``last``, close, and cut the connection if the client has
        not taken it all within a second (a client that does not read would hold it open)."""
        self._flush()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(last)
            transport.close()
            self.loop.call_later(_CLOSE_TIMEOUT, transport.abort)


def _is_grpc(content_type: bytes) -> bool:
    """``application/grpc``, alone or followed by ``+`` or ``;`` (grpc-go's check)."""
    rest = content_type[len(b"application/grpc") :] if content_type.startswith(b"application/grpc") else None
    return rest is not None and (not rest or rest[:1] in (b"+", b";"))


def _unpad(payload: bytes) -> bytes:
    if not payload or payload[0] >= len(payload):
        raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def _wake(call: Call) -> None:
    if call.window_open is not None:
        call.window_open.set()
