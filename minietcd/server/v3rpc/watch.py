"""etcd's Watch service on the application API: the stream's requests go in, its responses out.
Everything else (ordering, progress notifications, fragments) is the API's WatchSession."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.api import Watch
from minietcd.server.v3rpc.guard import request_context, streamed


class WatchService:
    def __init__(self, watch: Watch) -> None:
        self.watch = watch

    async def Watch(
        self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        responses = self.watch.stream(request_context(context), request_iterator)
        async with contextlib.aclosing(streamed(context, responses)) as out:
            async for resp in out:
                yield resp
