"""Issue "Fail safe", event 2: strangers on the peer port of a formed cluster, on real processes.

Anyone who could reach a peer port used to learn the member ids (Members, Hello) and end the
cluster with one MsgApp at term 2^64-1 from an unknown member with cluster id 0: the term was
stepped, persisted and overflowed its field. Now such packets are refused and the cluster keeps
its leader and term; connections that never finish their handshake are dropped.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import grpc
import pytest

from minietcd.api.raftpb import raft_pb2
from minietcd.api.raftpb import raft_pb2_grpc as _raft_grpc
from minietcd.server.transport import HANDSHAKE_TIMEOUT_MS
from tests.cluster.conftest import ClusterFactory
from tests.cluster.grpc_kv import KV, wait_until
from tests.cluster.harness import ProcessCluster, minietcd_binary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

raft_pb2_grpc: Any = _raft_grpc
ABSURD_TERM = 2**64 - 1


def _batch(cluster_id: int, sender: int, to: int, term: int = ABSURD_TERM) -> raft_pb2.MessageBatch:
    batch = raft_pb2.MessageBatch(cluster_id=cluster_id, from_member_id=sender, to_member_id=to)
    batch.messages.add(type=raft_pb2.MsgApp, to=to, from_=sender, term=term, log_term=term, index=10**9)
    return batch


def _send(stub: Any, batch: raft_pb2.MessageBatch) -> tuple[str, str]:
    try:
        stub.Send(iter([batch]), timeout=5)
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""
    return "OK", ""


def test_forged_peer_packets_are_refused_and_the_cluster_keeps_its_leader(
    process_cluster: ClusterFactory,
) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 3).start()
    leader = c.wait_healthy(30)
    target = next(i for i in range(3) if i != leader)  # a follower: the victim in the report
    cluster_id, member_id = c.ids(target)
    other = c.member_id(leader)
    before = KV(c.endpoint(target)).status()
    with grpc.insecure_channel(f"127.0.0.1:{c.members[target].peer_port}") as ch:
        stub = raft_pb2_grpc.RaftPeerStub(ch)
        # Members: only for a member that is joining. A stranger learns no id.
        with pytest.raises(grpc.RpcError) as info:
            stub.Members(raft_pb2.MembersRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Hello from a stranger: refused, and the refusal carries no id.
        hello = stub.Hello(raft_pb2.HelloRequest(cluster_id=0, from_member_id=0xBAD, to_member_id=member_id))
        assert hello.reject_reason and (hello.cluster_id, hello.member_id) == (0, 0)
        # The report's packet: cluster id 0, unknown sender, term 2^64-1.
        code, details = _send(stub, _batch(0, 0xBAD, member_id))
        assert (code, details.split(":")[0]) == ("FAILED_PRECONDITION", "cluster ID mismatch")
        # A foreign cluster id.
        assert _send(stub, _batch(cluster_id ^ 1, 0xBAD, member_id))[0] == "FAILED_PRECONDITION"
        # The right cluster id (a stranger could learn it elsewhere), but no such member.
        code, details = _send(stub, _batch(cluster_id, 0xBAD, member_id))
        assert code == "FAILED_PRECONDITION" and details.startswith("error sender not found")
        # A real member's id and the right cluster id (the peer port's trust boundary, see
        # docs/server.md): the absurd term is still refused as malformed, never stepped.
        code, details = _send(stub, _batch(cluster_id, other, member_id))
        assert code == "INVALID_ARGUMENT" and "above" in details
    # Nothing changed: same leader, same term, Status answers (it used to fail with "Value out
    # of range"), writes go through, on every member.
    assert c.wait_healthy(10) == leader
    for i in range(3):
        kv = KV(c.endpoint(i))
        st = kv.status()
        assert st.raftTerm == before.raftTerm and st.leader == before.leader
        kv.put(b"after/%d" % i, b"ok")
        kv.close()
    for i in range(3):
        assert "Traceback" not in c.members[i].log_path.read_text()


def test_half_open_peer_connections_are_dropped(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 1).start()
    c.wait_healthy(30)
    port = c.members[0].peer_port
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    try:
        for s in socks:
            s.settimeout(0.0)

        def all_closed() -> bool:
            closed = 0
            for s in socks:
                try:
                    if s.recv(1024) == b"":
                        closed += 1
                except BlockingIOError:
                    pass
                except OSError:  # reset by the server
                    closed += 1
            return closed == len(socks)

        started = time.monotonic()
        wait_until(all_closed, HANDSHAKE_TIMEOUT_MS / 1000 + 10, "the member to drop 200 silent connections")
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT_MS / 1000 + 10
        c.wait_healthy(10)  # and it served on meanwhile
    finally:
        for s in socks:
            s.close()
