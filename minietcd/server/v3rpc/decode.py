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

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import GrpcCode, MinietcdError
from minietcd.server.nesting import parse_request
from minietcd.server.rpcmetrics import RPC_METRICS, Rpc
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
    request deserializer guarded (see the module docstring) and its calls counted in
    go-grpc-prometheus's ``grpc_server_*`` metrics (rpcmetrics.py): both are done here, in the
    one wrapper every call goes through, so neither needs an interceptor of its own."""
    if handler.request_deserializer is None:
        return handler
    deserializer = _guarded(method, handler.request_deserializer)
    rpc = RPC_METRICS.rpc(method)
    if not handler.request_streaming:
        behavior = handler.unary_unary or handler.unary_stream
        streaming = handler.response_streaming

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rpc.started += 1
            rpc.received += 1
            try:
                if request.__class__ is Undecodable:
                    await _refuse(context, method, request, UNARY_PREFIX)
                response = await behavior(request, context)
            except BaseException as e:
                rpc.handle(_code(context, e))
                raise
            rpc.sent += 1
            rpc.handle(0)
            return response

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            rpc.started += 1
            rpc.received += 1
            try:
                if request.__class__ is Undecodable:
                    await _refuse(context, method, request, UNARY_PREFIX)
                async for response in behavior(request, context):
                    rpc.sent += 1
                    yield response
            except BaseException as e:
                rpc.handle(_code(context, e))
                raise
            rpc.handle(0)

        if streaming:
            return handler._replace(request_deserializer=deserializer, unary_stream=unary_stream)
        return handler._replace(request_deserializer=deserializer, unary_unary=unary)
    return _guard_stream(method, handler, deserializer, rpc)


def _guard_stream(
    method: str, handler: grpc.RpcMethodHandler, deserializer: Callable[[bytes], Any], rpc: Rpc
) -> grpc.RpcMethodHandler:
    inner = handler.stream_stream or handler.stream_unary

    # A bad message in a request stream is raised through the service (which may read its
    # requests in a task of its own, as Watch does) and answered here, in the RPC's own
    # task: aborting from the reading task could race a response being sent.
    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            rpc.received += 1
            if isinstance(request, Undecodable):
                raise _BadStreamMessage(request)
            yield request

    if handler.response_streaming:

        async def stream_stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            rpc.started += 1
            try:
                async for response in inner(checked(requests), context):
                    rpc.sent += 1
                    yield response
            except _BadStreamMessage as e:
                await _refuse_counted(context, method, e, rpc)
            except BaseException as e:
                rpc.handle(_code(context, e))
                raise
            else:
                rpc.handle(0)

        return handler._replace(request_deserializer=deserializer, stream_stream=stream_stream)

    async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        rpc.started += 1
        try:
            response = await inner(checked(requests), context)
        except _BadStreamMessage as e:
            await _refuse_counted(context, method, e, rpc)
        except BaseException as e:
            rpc.handle(_code(context, e))
            raise
        rpc.sent += 1
        rpc.handle(0)
        return response

    return handler._replace(request_deserializer=deserializer, stream_unary=stream_unary)


async def _refuse_counted(
    context: grpc.aio.ServicerContext, method: str, e: _BadStreamMessage, rpc: Rpc
) -> None:
    """Refuse a stream's undecodable message; the call ends with the refusal's code."""
    try:
        await _refuse(context, method, e.bad, STREAM_PREFIX)
    finally:
        rpc.handle(_code(context, e))


def _code(context: grpc.aio.ServicerContext, exc: BaseException) -> int:
    """The gRPC code a call that raised ``exc`` ends with (an abort set it on the context)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return int(code.value[0])
    return GrpcCode.CANCELLED if isinstance(exc, asyncio.CancelledError) else GrpcCode.UNKNOWN


class _BadStreamMessage(Exception):
    """An undecodable message in a request stream, on its way out of the service."""

    def __init__(self, bad: Undecodable) -> None:
        super().__init__(str(bad.error))
        self.bad = bad
