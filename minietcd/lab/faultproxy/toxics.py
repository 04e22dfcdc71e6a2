"""Toxics: their attributes, their JSON, and the coroutines that apply them.

Each direction of a proxied connection is a chain of *stages* joined by
``Channel``s (see ``link.py``). A stage runs one toxic's ``pipe`` coroutine,
like a Toxiproxy ``ToxicStub`` runs ``Toxic.Pipe``. Toxiproxy can interrupt a
running toxic so the chain can be rewired while data flows; here the
interrupt is task cancellation, and a stage records the data its toxic has
taken but not yet passed on (``held``) so the interrupter can forward it,
because Toxiproxy's toxics promise never to "drop data on the floor" when
interrupted.

The semantics of each toxic follow Toxiproxy v2's ``toxics/*.go``; where that
code has a quirk that a client could observe (the timeout toxic's timer
restarting on every chunk, toxicity being re-rolled whenever a stage is
restarted), the quirk is kept, because lab code must behave the same against
the real server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from minietcd.lab.faultproxy.apierror import (
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    TOXIC_ALREADY_EXISTS,
)
from minietcd.lab.faultproxy.channel import Channel, Chunk
from minietcd.lab.faultproxy.jsonio import (
    as_object,
    get_float,
    get_int,
    get_raw,
    get_str,
    type_error,
)


class Direction(enum.IntEnum):
    """Which way data flows: upstream is client -> server, downstream server -> client."""

    UPSTREAM = 0
    DOWNSTREAM = 1

    @classmethod
    def parse(cls, value: str) -> Direction:
        # Toxiproxy's stream.ParseDirection lower-cases before matching.
        lowered = value.lower()
        if lowered == "upstream":
            return cls.UPSTREAM
        if lowered == "downstream":
            return cls.DOWNSTREAM
        raise INVALID_STREAM

    def label(self) -> str:
        return "upstream" if self is Direction.UPSTREAM else "downstream"


# --- attributes -------------------------------------------------------------
# One dataclass per toxic type, fields named and ordered as Toxiproxy's JSON
# tags so ``dataclasses.asdict`` yields the same "attributes" object.


@dataclass(slots=True)
class NoopAttributes:
    pass


@dataclass(slots=True)
class LatencyAttributes:
    latency: int = 0  # milliseconds
    jitter: int = 0  # milliseconds, +/-


@dataclass(slots=True)
class BandwidthAttributes:
    rate: int = 0  # KB/s, 1 KB = 1000 bytes as in Toxiproxy


@dataclass(slots=True)
class SlowCloseAttributes:
    delay: int = 0  # milliseconds


@dataclass(slots=True)
class TimeoutAttributes:
    timeout: int = 0  # milliseconds; 0 = never close


@dataclass(slots=True)
class ResetPeerAttributes:
    timeout: int = 0  # milliseconds before the reset


@dataclass(slots=True)
class SlicerAttributes:
    average_size: int = 0  # bytes
    size_variation: int = 0  # bytes, +/-
    delay: int = 0  # microseconds between slices


@dataclass(slots=True)
class LimitDataAttributes:
    bytes: int = 0


@dataclass(slots=True)
class LimitDataState:
    """Per-connection count that survives the stage being interrupted and restarted."""

    transmitted: int = 0


Attributes = (
    NoopAttributes
    | LatencyAttributes
    | BandwidthAttributes
    | SlowCloseAttributes
    | TimeoutAttributes
    | ResetPeerAttributes
    | SlicerAttributes
    | LimitDataAttributes
)


@dataclass(slots=True)
class ToxicWrapper:
    """A toxic as the API knows it: Toxiproxy's ``ToxicWrapper``."""

    name: str
    type: str
    stream: str
    toxicity: float
    direction: Direction
    attributes: Attributes

    def to_json(self) -> dict[str, Any]:
        toxicity: float | int = self.toxicity
        # Go prints a float32 1.0 as 1; match it so JSON compares equal as text too.
        if float(toxicity).is_integer():
            toxicity = int(toxicity)
        return {
            "attributes": dataclasses.asdict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": toxicity,
        }


# --- stages -----------------------------------------------------------------


class Stage:
    """One link in a chain: runs a toxic (or the pass-through noop) between two channels."""

    __slots__ = (
        "closed",
        "committed",
        "held",
        "input",
        "output",
        "rng",
        "state",
        "task",
        "wrapper",
    )

    def __init__(
        self,
        wrapper: ToxicWrapper | None,
        input_: Channel,
        output: Channel,
        rng: random.Random,
    ) -> None:
        self.wrapper = wrapper
        self.input = input_
        self.output = output
        self.rng = rng
        self.state: object | None = None
        # Data taken from ``input`` that the toxic has not yet delivered.
        self.held: Chunk | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        # Set by reset_peer once it has decided to reset: Toxiproxy's sleep
        # there ignores interrupts, so the reset happens even if the toxic is
        # removed meanwhile.
        self.committed = False
        if wrapper is not None:
            kind = TOXIC_KINDS[wrapper.type]
            if kind.new_state is not None:
                self.state = kind.new_state()

    # The API a pipe coroutine uses.

    async def recv(self) -> Chunk | None:
        chunk = await self.input.get()
        self.held = chunk
        return chunk

    async def send(self, chunk: Chunk) -> None:
        self.held = chunk
        await self.output.put(chunk)
        self.held = None

    async def send_part(self, part: Chunk, rest: Chunk | None) -> None:
        """Deliver ``part`` of the held chunk; ``rest`` is what is then still held."""
        await self.output.put(part)
        self.held = rest

    def drop(self) -> None:
        self.held = None

    def close(self) -> None:
        """End the stream downstream of this stage (Toxiproxy's ``stub.Close``)."""
        if self.closed:
            return
        self.closed = True
        if self.held is not None:
            self.output.force(self.held)
            self.held = None
        self.output.close()

    # The API the link uses.

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        wrapper = self.wrapper
        # Toxiproxy rolls toxicity each time a stub starts running a toxic,
        # which includes every restart after an interrupt.
        if wrapper is not None and self.rng.random() < wrapper.toxicity:
            await TOXIC_KINDS[wrapper.type].pipe(self, wrapper.attributes)
        else:
            await _noop(self, NoopAttributes())

    async def interrupt(self) -> bool:
        """Stop the running toxic so the chain can be changed.

        Returns False if the stage has already closed its output, as
        Toxiproxy's ``InterruptToxic`` does; then the caller must not restart it.
        """
        task = self.task
        if task is None or self.closed:
            return False
        if self.committed:
            await asyncio.wait({task})
            return False
        task.cancel()
        await asyncio.wait({task})
        self.task = None
        if self.closed:
            return False
        if self.held is not None:
            self.output.force(self.held)
            self.held = None
        return True

    def cancel(self) -> None:
        """Tear down without forwarding anything: the connection is going away."""
        if self.task is not None:
            self.task.cancel()


# --- pipes --------------------------------------------------------------------


async def _noop(stage: Stage, _attrs: NoopAttributes) -> None:
    while True:
        chunk = await stage.recv()
        if chunk is None:
            stage.close()
            return
        await stage.send(chunk)


async def _latency(stage: Stage, attrs: LatencyAttributes) -> None:
    loop = asyncio.get_running_loop()
    while True:
        chunk = await stage.recv()
        if chunk is None:
            stage.close()
            return
        delay_ms = attrs.latency
        if attrs.jitter > 0:
            delay_ms += stage.rng.randrange(attrs.jitter * 2) - attrs.jitter
        # Relative to when the bytes were read, so back-to-back chunks are
        # delayed in parallel rather than one after another.
        sleep = delay_ms / 1000 - (loop.time() - chunk.timestamp)
        if sleep > 0:
            await asyncio.sleep(sleep)
        # Toxiproxy advances the stamp by the sleep so chained latency toxics add up.
        chunk.timestamp += sleep
        await stage.send(chunk)


async def _stall_forever() -> None:
    await asyncio.get_running_loop().create_future()


async def _bandwidth(stage: Stage, attrs: BandwidthAttributes) -> None:
    loop = asyncio.get_running_loop()
    debt = 0.0  # seconds of sending time owed, carried from chunk to chunk
    while True:
        chunk = await stage.recv()
        if chunk is None:
            stage.close()
            return
        rate = attrs.rate
        if rate <= 0:
            # Toxiproxy slices such a link into empty pieces forever: nothing
            # more gets through until the toxic is changed or removed.
            await _stall_forever()
        debt += len(chunk.data) / (rate * 1000)
        # Large chunks go out in 100 ms slices so a slow rate still trickles.
        slice_size = rate * 100
        while len(chunk.data) > slice_size:
            await asyncio.sleep(0.1)
            part = Chunk(chunk.data[:slice_size], chunk.timestamp)
            chunk = Chunk(chunk.data[slice_size:], chunk.timestamp)
            await stage.send_part(part, chunk)
            debt -= 0.1
        started = loop.time()
        await asyncio.sleep(max(debt, 0.0))
        # Sleeps overshoot; counting the real time keeps the average rate right.
        debt -= loop.time() - started
        await stage.send(chunk)


async def _slow_close(stage: Stage, attrs: SlowCloseAttributes) -> None:
    while True:
        chunk = await stage.recv()
        if chunk is None:
            await asyncio.sleep(max(attrs.delay, 0) / 1000)
            stage.close()
            return
        await stage.send(chunk)


async def _timeout(stage: Stage, attrs: TimeoutAttributes) -> None:
    # Since Toxiproxy 2.1.1 the timeout toxic discards what reaches it (it
    # used to leave it queued), and its timer restarts with every chunk.
    timeout = attrs.timeout / 1000
    while True:
        if timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await stage.recv()
            except TimeoutError:
                stage.close()
                return
        else:
            chunk = await stage.recv()
        if chunk is None:
            stage.close()
            return
        stage.drop()


async def _reset_peer(stage: Stage, attrs: ResetPeerAttributes) -> None:
    # Any arrival, end of stream included, triggers the reset; the data is
    # discarded. The RST itself comes from SO_LINGER 0, set by the link.
    await stage.recv()
    stage.drop()
    stage.committed = True
    await asyncio.sleep(max(attrs.timeout, 0) / 1000)
    stage.close()


async def _limit_data(stage: Stage, attrs: LimitDataAttributes) -> None:
    state = stage.state
    assert isinstance(state, LimitDataState)
    while True:
        chunk = await stage.recv()
        if chunk is None:
            stage.close()
            return
        remaining = max(attrs.bytes - state.transmitted, 0)
        if remaining < len(chunk.data):
            chunk = Chunk(chunk.data[:remaining], chunk.timestamp)
            stage.held = chunk
        if chunk.data:
            await stage.send(chunk)
            state.transmitted += len(chunk.data)
        else:
            stage.drop()
        if attrs.bytes - state.transmitted <= 0:
            stage.close()
            return


def slice_points(attrs: SlicerAttributes, rng: random.Random, start: int, end: int) -> list[int]:
    """Toxiproxy's slicer split: [s0, e0, s1, e1, ...] by recursive near-halving."""
    if (end - start) - attrs.average_size <= attrs.size_variation or end - start <= 1:
        return [start, end]
    offset = 0
    if attrs.size_variation > 0:
        offset = rng.randrange(attrs.size_variation * 2) - attrs.size_variation
    # Clamped so a degenerate configuration still makes progress; Toxiproxy
    # would recurse forever (or panic) there instead.
    mid = min(max(start + (end - start) // 2 + offset, start + 1), end - 1)
    return slice_points(attrs, rng, start, mid) + slice_points(attrs, rng, mid, end)


async def _slicer(stage: Stage, attrs: SlicerAttributes) -> None:
    while True:
        chunk = await stage.recv()
        if chunk is None:
            stage.close()
            return
        data = chunk.data
        points = slice_points(attrs, stage.rng, 0, len(data))
        for i in range(1, len(points), 2):
            part = Chunk(data[points[i - 1] : points[i]], chunk.timestamp)
            rest = Chunk(data[points[i] :], chunk.timestamp) if points[i] < len(data) else None
            await stage.send_part(part, rest)
            await asyncio.sleep(max(attrs.delay, 0) / 1_000_000)


# --- registry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToxicKind:
    """What the server needs to know about one toxic type."""

    attributes: type[Any]
    pipe: Callable[[Stage, Any], Awaitable[None]]
    # Capacity of the channel feeding the toxic (Toxiproxy's BufferSize).
    buffer_size: int = 1
    new_state: Callable[[], object] | None = None
    # Removing the toxic closes the connections it was applied to instead of
    # letting data flow on (Toxiproxy's CleanupToxic; the timeout toxic, whose
    # dropped data would otherwise leave a corrupted stream).
    closes_on_remove: bool = False


TOXIC_KINDS: dict[str, ToxicKind] = {
    "noop": ToxicKind(NoopAttributes, _noop),
    "latency": ToxicKind(LatencyAttributes, _latency, buffer_size=1024),
    "bandwidth": ToxicKind(BandwidthAttributes, _bandwidth),
    "slow_close": ToxicKind(SlowCloseAttributes, _slow_close),
    "timeout": ToxicKind(TimeoutAttributes, _timeout, closes_on_remove=True),
    "reset_peer": ToxicKind(ResetPeerAttributes, _reset_peer),
    "slicer": ToxicKind(SlicerAttributes, _slicer),
    "limit_data": ToxicKind(LimitDataAttributes, _limit_data, new_state=LimitDataState),
}


# --- JSON in ----------------------------------------------------------------------


def _decode_attributes(kind: ToxicKind, base: Any, raw: Any, type_name: str) -> Any:
    """Overlay the JSON ``attributes`` object on ``base`` (a default or current value)."""
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise type_error(raw, "struct field ToxicWrapper.attributes", f"toxics.{type_name}")
    values: dict[str, int] = {}
    for field in dataclasses.fields(kind.attributes):
        current = getattr(base, field.name)
        values[field.name] = get_int(raw, field.name, current, type_name)
    return kind.attributes(**values)


def toxic_from_json(body: Any, exists: Callable[[str], bool]) -> ToxicWrapper:
    """Build a new toxic from a create request, checking in Toxiproxy's order.

    ``exists`` tells whether a toxic name is taken on the proxy; a duplicate
    is reported after the type check and before the attributes are decoded,
    so a request wrong in several ways gets the same answer as from Toxiproxy.
    """
    obj = as_object(body, "toxics.ToxicWrapper")
    name = get_str(obj, "name", "", "ToxicWrapper")
    type_name = get_str(obj, "type", "", "ToxicWrapper")
    stream = get_str(obj, "stream", "downstream", "ToxicWrapper")
    toxicity = get_float(obj, "toxicity", 1.0, "ToxicWrapper")
    raw_attributes = get_raw(obj, "attributes")
    if raw_attributes is not None and not isinstance(raw_attributes, dict):
        # Go first decodes attributes into an empty struct, which only an object fits.
        raise type_error(raw_attributes, "struct field ToxicWrapper.attributes", "toxics.Toxic")
    direction = Direction.parse(stream)
    if not name:
        name = f"{type_name}_{stream}"
    kind = TOXIC_KINDS.get(type_name)
    if kind is None:
        raise INVALID_TOXIC_TYPE
    if exists(name):
        raise TOXIC_ALREADY_EXISTS
    attributes = _decode_attributes(kind, kind.attributes(), raw_attributes, type_name)
    return ToxicWrapper(name, type_name, stream, toxicity, direction, attributes)


def toxic_update_from_json(toxic: ToxicWrapper, body: Any) -> tuple[Attributes, float]:
    """New attributes and toxicity for ``toxic`` from an update request.

    Only ``attributes`` (merged over the current ones) and ``toxicity`` can
    change; name, type and stream are ignored, as in Toxiproxy.
    """
    obj = as_object(body, "struct { Attributes interface {}; Toxicity float32 }")
    kind = TOXIC_KINDS[toxic.type]
    toxicity = get_float(obj, "toxicity", toxic.toxicity, "ToxicWrapper")
    attributes = _decode_attributes(kind, toxic.attributes, get_raw(obj, "attributes"), toxic.type)
    return attributes, toxicity
