"""etcd's Lock service (``v3lockpb.Lock``, etcd 3.4's ``etcdserver/api/v3lock``): Lock and
Unlock on the recipes of :mod:`.concurrency`.

Lock blocks until the lock is held and returns its key (``name/<lease hex>``), which holds the
lock for as long as the key exists: until Unlock deletes it or the lease expires.
"""

from __future__ import annotations

from collections.abc import Callable

from minietcd.api.v3lockpb import v3lock_pb2
from minietcd.server.api import concurrency
from minietcd.server.api.admission import Admission, Op, RequestContext

ClientFor = Callable[[RequestContext], concurrency.LocalClient]


class Lock:
    def __init__(self, admission: Admission, client_for: ClientFor) -> None:
        self._admission = admission
        self._client_for = client_for

    async def lock(self, ctx: RequestContext, req: v3lock_pb2.LockRequest) -> v3lock_pb2.LockResponse:
        await self._admission.check(ctx, Op.LOCK, req)
        c = self._client_for(ctx)
        header, key = await concurrency.as_etcd(concurrency.lock(c, req.name, req.lease))
        return v3lock_pb2.LockResponse(header=header, key=key)

    async def unlock(self, ctx: RequestContext, req: v3lock_pb2.UnlockRequest) -> v3lock_pb2.UnlockResponse:
        await self._admission.check(ctx, Op.UNLOCK, req)
        header = await concurrency.as_etcd(concurrency.unlock(self._client_for(ctx), req.key))
        return v3lock_pb2.UnlockResponse(header=header)
