"""Bytes on the client port that are not the request they claim to be (grpc-go's answer).

grpc-go, under etcd 3.4, answers a request it cannot unmarshal with ``INTERNAL`` and
``grpc: error unmarshalling request: <why>`` (a streamed message: ``grpc: failed to unmarshal
the received message <why>``), and the server logs nothing. grpc's Python server instead logs a
traceback per request and answers ``UNKNOWN``. :func:`guard_handler` restores grpc-go's
answer: it wraps a method's deserializer so that a failure becomes a value, and the method
answers that value's status before the service sees anything. One short warning line is logged
per refused request.

The wrapping is done once, when the services are registered (``v3rpc/services.py``), not per
call: a grpc.aio server interceptor runs a coroutine chain and rebuilds the handler for every
call, a measurable share of a unary call's cost (docs/benchmarks.md).

It also parses Txn requests through :func:`minietcd.server.nesting.parse_request`, so a Txn
nested as deep as etcd serves (127 levels by default) is parsed, and a deeper one gets etcd's
"too many operations in txn request" (INVALID_ARGUMENT), exactly what apply will parse back.

``why`` is protobuf's own text (e.g. ``Error parsing message with type
'etcdserverpb.PutRequest'``), not gogoproto's ``unexpected EOF``: the wording around it is
grpc-go's, so clients that match on the prefix see what they see from etcd.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import MinietcdError
from minietcd.server.nesting import parse_request
from minietcd.server.v3rpc.errors import to_grpc_status

log = logging.getLogger("minietcd.server.v3rpc")

UNARY_PREFIX = "grpc: error unmarshalling request: "
STREAM_PREFIX = "grpc: failed to unmarshal the received message "
TXN_METHOD = "/etcdserverpb.KV/Txn"


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What the guarded deserializer returns instead of raising."""

    error: Exception

    def status(self, prefix: str) -> tuple[grpc.StatusCode, str]:
        if isinstance(self.error, MinietcdError):  # e.g. TxnTooDeepError: etcd's own error
            return to_grpc_status(self.error)
        return grpc.StatusCode.INTERNAL, prefix + (str(self.error) or type(self.error).__name__)


def _guarded(method: str, deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    if method == TXN_METHOD:

        def deserialize(raw: bytes) -> Any:
            return parse_request(rpc_pb2.TxnRequest, raw)

    def guarded(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except (DecodeError, MinietcdError, ValueError, RecursionError) as e:
            return Undecodable(e)

    return guarded


async def _refuse(context: grpc.aio.ServicerContext, method: str, bad: Undecodable, prefix: str) -> None:
    code, message = bad.status(prefix)
    if code == grpc.StatusCode.INTERNAL:  # garbage, not a request etcd refuses by its rules
        log.warning("etcdserver/api/v3rpc: %s from %s: %s", method, context.peer(), message)
    await context.abort(code, message)


def guard_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` (of the full method name ``method``, e.g. ``/etcdserverpb.KV/Put``) with its
    request deserializer guarded: see the module docstring."""
    if handler.request_deserializer is None:
        return handler
    deserializer = _guarded(method, handler.request_deserializer)
    if not handler.request_streaming:
        behavior = handler.unary_unary or handler.unary_stream
        streaming = handler.response_streaming

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request.__class__ is Undecodable:
                await _refuse(context, method, request, UNARY_PREFIX)
            return await behavior(request, context)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if request.__class__ is Undecodable:
                await _refuse(context, method, request, UNARY_PREFIX)
            async for response in behavior(request, context):
                yield response

        if streaming:
            return handler._replace(request_deserializer=deserializer, unary_stream=unary_stream)
        return handler._replace(request_deserializer=deserializer, unary_unary=unary)
    return _guard_stream(method, handler, deserializer)


def _guard_stream(
    method: str, handler: grpc.RpcMethodHandler, deserializer: Callable[[bytes], Any]
) -> grpc.RpcMethodHandler:
    inner = handler.stream_stream or handler.stream_unary

    # A bad message in a request stream is raised through the service (which may read its
    # requests in a task of its own, as Watch does) and answered here, in the RPC's own
    # task: aborting from the reading task could race a response being sent.
    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Undecodable):
                raise _BadStreamMessage(request)
            yield request

    if handler.response_streaming:

        async def stream_stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            try:
                async for response in inner(checked(requests), context):
                    yield response
            except _BadStreamMessage as e:
                await _refuse(context, method, e.bad, STREAM_PREFIX)

        return handler._replace(request_deserializer=deserializer, stream_stream=stream_stream)

    async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        try:
            return await inner(checked(requests), context)
        except _BadStreamMessage as e:
            await _refuse(context, method, e.bad, STREAM_PREFIX)

    return handler._replace(request_deserializer=deserializer, stream_unary=stream_unary)


class _BadStreamMessage(Exception):
    """An undecodable message in a request stream, on its way out of the service."""

    def __init__(self, bad: Undecodable) -> None:
        super().__init__(str(bad.error))
        self.bad = bad
