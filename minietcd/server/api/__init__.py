"""The application API: the one way into a member for every face (DESIGN rule 6).

Modelled on etcd's ``etcdserver/v3_server.go`` interfaces (RaftKV, Lessor, Cluster, Maintenance,
Authenticator, Watchable) and its v3lock / v3election servers. One method per operation; each takes etcd's
request message plus a :class:`RequestContext` and returns etcd's response message (header
filled) or raises a typed error of :mod:`minietcd.errors`::

    api = Api(server, hub, ApiOptions(max_txn_ops=128))
    resp = await api.kv.put(RequestContext(), rpc_pb2.PutRequest(key=b"k", value=b"v"))

Inside each method, once for every face: admission (learner / ``hasleader`` checks:
:mod:`.admission`), validation, auth (who the request is and whether it may: :mod:`.authorize`),
quota, the linearizable-read barrier, the proposal or the read, and the response header. A face
(the gRPC servicers in ``server/v3rpc``, an HTTP gateway) only turns its transport's request
into ``(ctx, message)``, calls the method, and maps a typed error to its status through one
table.

Streams are async iterators: ``lease.keep_alive(ctx, requests)``, ``watch.stream(ctx, requests)``
(or :meth:`Watch.open` for the :class:`WatchSession` object), ``maintenance.snapshot`` and
``election.observe``.

Adding an operation: one method here (admit with a new :class:`Op`, then the work), one line per
face.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from minietcd.mvcc.watch import WatchHub
from minietcd.server.api import concurrency
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.api.auth import Auth
from minietcd.server.api.authorize import Authorizer
from minietcd.server.api.cluster import Cluster
from minietcd.server.api.election import Election
from minietcd.server.api.forward import LeaderForwarder, OpenChannel
from minietcd.server.api.kv import KV
from minietcd.server.api.lease import Lease
from minietcd.server.api.lock import Lock
from minietcd.server.api.maintenance import Maintenance
from minietcd.server.api.validate import DEFAULT_MAX_TXN_OPS
from minietcd.server.api.watch import DEFAULT_PROGRESS_INTERVAL, Watch, WatchSession
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.tls import ChannelOpener

__all__ = [
    "KV",
    "Api",
    "ApiOptions",
    "Auth",
    "Cluster",
    "Election",
    "Lease",
    "Lock",
    "Maintenance",
    "Op",
    "RequestContext",
    "Watch",
    "WatchSession",
]


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """The flags that shape the API's answers."""

    #: --max-txn-ops: most operations in one branch of a txn.
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    #: --strict-reconfig-check: refuse membership changes that could cost the quorum.
    strict_reconfig_check: bool = True
    #: --experimental-watch-progress-notify-interval, in seconds.
    watch_progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    #: Dials a leader's client URL to forward lease calls (None: plain, or system roots for https).
    open_channel: OpenChannel | None = None
    #: Randomness of the watch progress timers' jitter (seeded in tests).
    rng: random.Random | None = None
    #: --bcrypt-cost: how hard a new password's hash is (2^cost rounds).
    bcrypt_cost: int = 10
    #: --client-cert-auth: a verified client certificate's CN is the user of a request that
    #: carries no token (etcd's AuthInfoFromTLS).
    client_cert_auth: bool = False


class Api:
    """One member's application API: ``.kv .lease .watch .cluster .maintenance .auth .lock
    .election``."""

    def __init__(self, server: EtcdServer, hub: WatchHub, options: ApiOptions | None = None) -> None:
        opts = options or ApiOptions()
        lessor = server.sm.lessor

        def lease_keys(lease_id: int) -> tuple[bytes, ...]:
            lease = lessor.lookup(lease_id)
            return () if lease is None else lease.keys

        authorizer = Authorizer(server.sm.auth, client_cert_auth=opts.client_cert_auth, lease_keys=lease_keys)
        self.admission = Admission(server, authorizer)
        self._forwarder = LeaderForwarder(server, opts.open_channel or ChannelOpener())
        self.kv = KV(server, self.admission, opts.max_txn_ops)
        self.lease = Lease(server, self.admission, self._forwarder)
        self.watch = Watch(
            hub, server.header, self.admission, opts.watch_progress_interval, rng=opts.rng
        )
        self.cluster = Cluster(server, self.admission, opts.strict_reconfig_check)
        self.maintenance = Maintenance(server, self.admission)
        self.auth = Auth(server, self.admission, opts.bcrypt_cost)

        def client_for(ctx: RequestContext) -> concurrency.LocalClient:
            return concurrency.LocalClient(self.kv, self.lease, hub, server.header, server.spawn, ctx)

        self.lock = Lock(self.admission, client_for)
        self.election = Election(self.admission, client_for)

    async def close(self) -> None:
        """Close the channels to the leader that lease forwarding opened."""
        await self._forwarder.close()
