"""An active/passive "controller": run several replicas, exactly one works at a time.

This is the pattern of Kubernetes' kube-controller-manager and kube-scheduler with
``--leader-elect``: every replica campaigns in one election; the elected one does the work and
the others stand by. The election hangs on a lease: the active replica keeps its lease alive,
and if it dies (or is cut off) the lease expires within ``--ttl`` seconds, its leader key is
deleted and the next replica in line takes over. Stopping it cleanly (SIGTERM / Ctrl-C) resigns
at once instead.

It talks to the cluster over plain gRPC with etcd's own API, so it runs unchanged against
minietcd or etcd 3.4:

- ``Lease.LeaseGrant`` / ``Lease.LeaseKeepAlive``: the replica's lease, renewed every TTL/3;
- ``Election.Campaign``: blocks until this replica leads (server-side recipe: key
  ``<election>/<lease hex>``, waiting for the deletion of every earlier key);
- ``KV.Txn`` guarded by the leader key's create revision: the work is fenced, so a replica
  that lost its leadership without noticing yet cannot overwrite its successor's writes;
- ``Election.Resign`` and ``Lease.LeaseRevoke`` on shutdown.

Usage::

    python examples/controller.py --endpoints 127.0.0.1:2379,127.0.0.1:22379 --id ctrl-a

See docs/leader-election.md for a worked example on a 3-member minietcd cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc
from minietcd.api.v3electionpb import v3election_pb2 as epb
from minietcd.api.v3electionpb import v3election_pb2_grpc as _election_grpc

# The generated stubs are untyped.
rpc_grpc: Any = _rpc_grpc
election_grpc: Any = _election_grpc

log = logging.getLogger("controller")
RPC_TIMEOUT = 5.0


class LeadershipLost(Exception):
    """The lease is gone or the leader key is no longer ours: stop working at once."""


class Controller:
    def __init__(
        self, channel: grpc.aio.Channel, identity: str, election: str, ttl: int, period: float
    ) -> None:
        self.identity = identity
        self.election = election.encode()
        self.ttl = ttl
        self.period = period
        self.kv = rpc_grpc.KVStub(channel)
        self.leases = rpc_grpc.LeaseStub(channel)
        self.elections = election_grpc.ElectionStub(channel)

    async def run(self, stop: asyncio.Event) -> int:
        grant = await self.leases.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=self.ttl), timeout=RPC_TIMEOUT)
        lease = int(grant.ID)
        log.info("lease %x granted (TTL %ds)", lease, self.ttl)
        keepalive = asyncio.create_task(self._keep_alive(lease))
        stopping = asyncio.create_task(stop.wait())
        leader: epb.LeaderKey | None = None
        try:
            log.info("campaigning; current leader: %s", await self._current_leader())
            campaign = asyncio.create_task(self._campaign(lease))
            await asyncio.wait({campaign, keepalive, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not campaign.done():
                campaign.cancel()  # the server resigns a campaign whose call is cancelled
                with contextlib.suppress(asyncio.CancelledError):
                    await campaign
                if stop.is_set():
                    log.info("stopped while standing by")
                    return 0
                keepalive.result()  # raises LeadershipLost
            leader = campaign.result()
            log.info("became leader (key %s, rev %d)", leader.key.decode(), leader.rev)
            work = asyncio.create_task(self._lead(leader))
            await asyncio.wait({work, keepalive, stopping}, return_when=asyncio.FIRST_COMPLETED)
            work.cancel()
            if stop.is_set():
                await self.elections.Resign(epb.ResignRequest(leader=leader), timeout=RPC_TIMEOUT)
                log.info("resigned; exiting")
                return 0
            for t in (work, keepalive):
                if t.done() and not t.cancelled() and (exc := t.exception()) is not None:
                    raise exc
            raise LeadershipLost("lease keep-alive ended")
        except LeadershipLost as e:
            # As kube-controller-manager does: exit, and let the supervisor restart a fresh
            # replica, rather than carry on with state built while leading.
            log.error("leadership lost: %s; exiting", e)
            return 1
        finally:
            keepalive.cancel()
            stopping.cancel()
            with contextlib.suppress(grpc.RpcError):
                await self.leases.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease), timeout=RPC_TIMEOUT)

    async def _current_leader(self) -> str:
        try:
            resp = await self.elections.Leader(epb.LeaderRequest(name=self.election), timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as e:
            if e.details() == "election: no leader":
                return "none"
            raise
        return f"{resp.kv.value.decode()} ({resp.kv.key.decode()})"

    async def _campaign(self, lease: int) -> epb.LeaderKey:
        """Campaign until elected. A campaign on the same lease is idempotent (same key), so a
        call cut off by a member going away is simply made again, on another member."""
        req = epb.CampaignRequest(name=self.election, lease=lease, value=self.identity.encode())
        while True:
            try:
                resp = await self.elections.Campaign(req)
                leader: epb.LeaderKey = resp.leader
                return leader
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                log.warning("campaign interrupted (%s); campaigning again", e.details())
                await asyncio.sleep(0.5)

    async def _keep_alive(self, lease: int) -> None:
        """Renew the lease every TTL/3. A keep-alive stream cut by its member going away (or
        losing its leader) is opened again, on another member if need be, as etcd's Go client
        does; LeadershipLost once the lease is gone, or once it has not been renewed for two
        thirds of its TTL: then it may expire before the next renewal, and a successor be
        elected, so stop working before that can happen."""

        async def requests() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
            while True:
                yield rpc_pb2.LeaseKeepAliveRequest(ID=lease)
                await asyncio.sleep(self.ttl / 3)

        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.ttl * 2 / 3
        while True:
            call = self.leases.LeaseKeepAlive(requests(), wait_for_ready=True)
            try:
                while True:  # a member that stops answering (paused, cut off) must not hang us
                    resp = await asyncio.wait_for(call.read(), max(0.0, give_up - loop.time()))
                    if resp is grpc.aio.EOF:
                        why = "keep-alive stream ended"
                        break
                    if resp.TTL <= 0:
                        raise LeadershipLost(f"lease {lease:x} expired")
                    give_up = loop.time() + resp.TTL * 2 / 3
            except TimeoutError:
                why = "no keep-alive answer"
            except grpc.aio.AioRpcError as e:
                why = f"keep-alive failed: {e.details()}"
            finally:
                call.cancel()
            if loop.time() >= give_up:
                raise LeadershipLost(f"{why}; the lease may expire before it is renewed")
            log.warning("%s; renewing again", why)
            await asyncio.sleep(min(0.2, max(0.0, give_up - loop.time())))

    async def _lead(self, leader: epb.LeaderKey) -> None:
        """The controller's work: a reconcile step every period, each write fenced by the
        leader key (it only applies while our key still has the create revision we won with)."""
        n = 0
        while True:
            n += 1
            fenced = rpc_pb2.TxnRequest(
                compare=[
                    rpc_pb2.Compare(
                        key=leader.key,
                        target=rpc_pb2.Compare.CREATE,
                        result=rpc_pb2.Compare.EQUAL,
                        create_revision=leader.rev,
                    )
                ],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(
                            key=b"controller/status", value=f"reconciled by {self.identity} (#{n})".encode()
                        )
                    )
                ],
            )
            try:
                # A step must end well within the lease's TTL: one still in flight when the lease
                # could have expired is not fenced by anything we know of any more. (A write in
                # flight when etcd's leader dies waits for etcd's request timeout otherwise.)
                resp = await self.kv.Txn(fenced, timeout=min(RPC_TIMEOUT, self.ttl / 2))
            except grpc.aio.AioRpcError as e:
                # A member going away: the channel moves to another. If the cluster stays out
                # of reach, the lease keep-alive fails too and ends the leadership.
                log.warning("reconcile #%d failed (%s); retrying", n, e.details())
            else:
                if not resp.succeeded:
                    raise LeadershipLost("leader key is gone")
                log.info("reconcile #%d done (revision %d)", n, resp.header.revision)
            await asyncio.sleep(self.period)


def grpc_target(endpoints: str) -> str:
    """gRPC's target for several addresses: it connects to the first that answers, and moves
    on when that one goes away."""
    hosts = [e.strip().split("://", 1)[-1].rstrip("/") for e in endpoints.split(",") if e.strip()]
    return "ipv4:" + ",".join(hosts)


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoints", default="127.0.0.1:2379", help="comma-separated host:port list")
    p.add_argument("--id", required=True, help="this replica's name (the election value)")
    p.add_argument("--election", default="controller-leader", help="election name (key prefix)")
    p.add_argument("--ttl", type=int, default=5, help="lease TTL: how long a dead leader blocks a takeover")
    p.add_argument("--period", type=float, default=2.0, help="seconds between reconcile steps")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s.%(msecs)03d {args.id} %(message)s", datefmt="%H:%M:%S"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with grpc.aio.insecure_channel(grpc_target(args.endpoints)) as channel:
        return await Controller(channel, args.id, args.election, args.ttl, args.period).run(stop)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
