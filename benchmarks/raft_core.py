"""How fast does the pure Raft core commit? (issue: the Raft core, "Speed")

A 3-node cluster in one process: RawNode + MemoryStorage per node, messages handed over in
memory, every Ready handled in full (persist to MemoryStorage, deliver, apply, advance). Clients
propose in batches; the figure is committed-and-applied entries per second on the leader, all
three nodes' work included. Nothing is timed in a test: run it by hand and record the figures in
docs/benchmarks.md.

    python3 benchmarks/raft_core.py [--entries 200000] [--batch 100] [--size 256] [--inflight 4]
"""

from __future__ import annotations

import argparse
import random
import time

from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.config import Config
from minietcd.raft.rawnode import Peer, RawNode
from minietcd.raft.storage import MemoryStorage
from minietcd.raft.types import EntryType, Message


class Node:
    __slots__ = ("applied", "node", "storage")

    def __init__(self, node_id: int, peers: list[Peer]) -> None:
        self.storage = MemoryStorage()
        self.node = RawNode(Config(id=node_id, storage=self.storage, rng=random.Random(node_id)))
        self.node.bootstrap(peers)
        self.applied = 0

    def handle_ready(self, outbox: list[Message]) -> bool:
        if not self.node.has_ready():
            return False
        rd = self.node.ready()
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if rd.entries:
            self.storage.append(rd.entries)
        outbox.extend(rd.messages)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                self.node.apply_conf_change(decode_conf_change(e.data))
            elif e.data:
                self.applied += 1
        self.node.advance(rd)
        return True


def pump(nodes: dict[int, Node]) -> None:
    """One round: every node handles its Ready, then every message is delivered."""
    outbox: list[Message] = []
    for n in nodes.values():
        n.handle_ready(outbox)
    for m in outbox:
        nodes[m.to].node.step(m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100, help="proposals per propose_many call")
    ap.add_argument("--inflight", type=int, default=4, help="batches proposed per round")
    ap.add_argument("--size", type=int, default=256, help="bytes per entry")
    args = ap.parse_args()

    peers = [Peer(i) for i in (1, 2, 3)]
    nodes = {i: Node(i, peers) for i in (1, 2, 3)}
    for _ in range(5):
        pump(nodes)
    nodes[1].node.campaign()
    for _ in range(10):
        pump(nodes)
    leader = nodes[1]
    payload = b"x" * args.size
    batch = [payload] * args.batch
    start = time.perf_counter()
    proposed = 0
    rounds = 0
    while leader.applied < args.entries:
        for _ in range(args.inflight):
            if proposed < args.entries:
                leader.node.propose_many(batch)
                proposed += args.batch
        pump(nodes)
        rounds += 1
    elapsed = time.perf_counter() - start
    print(
        f"3 nodes, batches of {args.batch} x {args.size} B, {args.inflight} batches/round: "
        f"{leader.applied} entries committed in {elapsed:.2f} s = {leader.applied / elapsed:,.0f} entries/s "
        f"({rounds} rounds)"
    )


if __name__ == "__main__":
    main()
