"""etcd's Lock service (``v3lockpb.Lock``): Lock and Unlock on the recipes of
:mod:`minietcd.server.concurrency`, as etcd 3.4's ``etcdserver/api/v3lock`` runs them on
``clientv3/concurrency``.

Lock blocks until the lock is held and returns its key (``name/<lease hex>``), which holds the
lock for as long as the key exists: until Unlock deletes it or the lease expires.
"""

from __future__ import annotations

import grpc

from minietcd.api.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from minietcd.mvcc.watch import WatchHub
from minietcd.server import concurrency
from minietcd.server.etcd_server import EtcdServer


class LockService(v3lock_pb2_grpc.LockServicer):
    def __init__(self, server: EtcdServer, hub: WatchHub) -> None:
        self.s = server
        self.c = concurrency.LocalClient(server, hub)

    async def Lock(
        self, request: v3lock_pb2.LockRequest, context: grpc.aio.ServicerContext
    ) -> v3lock_pb2.LockResponse:
        await concurrency.check_call(self.s, context)
        header, key = await concurrency.as_etcd(
            context, concurrency.lock(self.c, request.name, request.lease)
        )
        return v3lock_pb2.LockResponse(header=header, key=key)

    async def Unlock(
        self, request: v3lock_pb2.UnlockRequest, context: grpc.aio.ServicerContext
    ) -> v3lock_pb2.UnlockResponse:
        await concurrency.check_call(self.s, context)
        header = await concurrency.as_etcd(context, concurrency.unlock(self.c, request.key))
        return v3lock_pb2.UnlockResponse(header=header)
