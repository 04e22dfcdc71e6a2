"""Checks etcd makes on every client RPC before the service sees it (v3rpc/interceptor.go):

- a learner serves only Status and serializable Range; every other RPC, and every stream but
  Snapshot, gets "etcdserver: rpc not supported for learner";
- a request carrying the metadata ``hasleader: true`` (etcdctl watch sets it) fails with
  "etcdserver: no leader" while this member knows no leader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.etcd_server import ERR_NO_LEADER, EtcdServer

ERR_LEARNER = "etcdserver: rpc not supported for learner"
SNAPSHOT_METHOD = "/etcdserverpb.Maintenance/Snapshot"


def supported_for_learner(request: object) -> bool:
    if isinstance(request, rpc_pb2.StatusRequest):
        return True
    return isinstance(request, rpc_pb2.RangeRequest) and request.serializable


class EtcdInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc has no type hints: the base is Any
    def __init__(self, server: EtcdServer | None = None) -> None:
        # None until attach(): the client listener is bound (with its interceptors) before
        # the data dir is read, i.e. before there is a server; it serves only after attach.
        self._server = server

    def attach(self, server: EtcdServer) -> None:
        self._server = server

    @property
    def s(self) -> EtcdServer:
        assert self._server is not None, "EtcdInterceptor used before attach()"
        return self._server

    def _requires_leader(self, context: grpc.aio.ServicerContext) -> bool:
        md = context.invocation_metadata() or ()
        return any(k == "hasleader" and v == "true" for k, v in md)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/etcdserverpb."):
            return handler
        s = self.s
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if s.is_learner() and not supported_for_learner(request):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, ERR_LEARNER)
                if s.leader == 0 and self._requires_leader(context):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, ERR_NO_LEADER)
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if details.method == SNAPSHOT_METHOD:
            return handler
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
                if s.is_learner():
                    await context.abort(grpc.StatusCode.UNAVAILABLE, ERR_LEARNER)
                if s.leader == 0 and self._requires_leader(context):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, ERR_NO_LEADER)
                async for resp in inner_ss(request_iterator, context):
                    yield resp

            return grpc.stream_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
