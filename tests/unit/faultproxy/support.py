"""Helpers for the fault proxy tests: upstream servers, sockets, deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import aiohttp

T = TypeVar("T")

# Generous: these bound how long a test may wait, they do not pace it.
DEADLINE = 10.0


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking toxiproxy-python call off the loop the server runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Upstream:
    """A TCP server on 127.0.0.1 that echoes, records what it gets, or closes at once."""

    def __init__(self, mode: Literal["echo", "record", "close"] = "echo") -> None:
        self.mode = mode
        self.accepted = 0
        self.received = b""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> Upstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.mode != "close":
                while data := await reader.read(65536):
                    if self.mode == "echo":
                        writer.write(data)
                        await writer.drain()
                    else:
                        self.received += data
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Aborting ends each handler's read; cancelling the handlers instead
        # makes asyncio's stream callback log the cancellation as an error.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=DEADLINE)


class Client:
    """One TCP connection to a proxy's listen address.

    Every client is remembered until ``close_all`` (run after each test), so
    a test that forgets one does not leak its socket into the next.
    """

    _open: set[Client] = set()  # shared on purpose: one registry for all tests

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        Client._open.add(self)

    @classmethod
    async def connect(cls, address: str) -> Client:
        host, port = split(address)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), DEADLINE)
        return cls(reader, writer)

    @classmethod
    def close_all(cls) -> None:
        for client in list(cls._open):
            client.close()

    async def roundtrip(self, payload: bytes) -> float:
        """Send ``payload`` to an echo upstream and wait for all of it; the seconds it took."""
        started = time.monotonic()
        # Not drained before reading: with a large payload both directions
        # fill up and a drain first would wait for a read that never starts.
        self.writer.write(payload)
        echoed = await asyncio.wait_for(self.reader.readexactly(len(payload)), DEADLINE)
        assert echoed == payload
        await self.writer.drain()
        return time.monotonic() - started

    async def read_to_end(self) -> tuple[bytes, str]:
        """Everything until the proxy closes the connection, and how: "eof" or "reset"."""
        received = b""
        try:
            async with asyncio.timeout(DEADLINE):
                while data := await self.reader.read(65536):
                    received += data
        except ConnectionResetError:
            return received, "reset"
        return received, "eof"

    async def nothing_arrives(self, within: float) -> bool:
        """True if no byte (and no close) arrives for ``within`` seconds."""
        try:
            await asyncio.wait_for(self.reader.read(1), within)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.writer.transport.abort()
        Client._open.discard(self)


async def wait_for_condition(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds, failing after the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Api:
    """Raw HTTP against the server, for status codes and exact JSON."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def request(
        self, method: str, path: str, body: Any = None, *, data: bytes | None = None, **kw: Any
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = dict(kw)
        if data is not None:
            kwargs["data"] = data
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as response:
            text = await response.text()
            with contextlib.suppress(ValueError):
                return response.status, json.loads(text) if text else None
            return response.status, text
