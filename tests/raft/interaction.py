"""A small interpreter for golden Raft interaction scripts (after etcd-io/raft's datadriven
``testdata/*.txt``). A script is a sequence of blocks::

    # prose explaining what is about to happen (kept verbatim)
    command arg key=value
    ----
    the output the command produced (checked; rewritten with --rewrite)

Commands (ids are node numbers):

    add-nodes N [prevote=true] [checkquorum=true] [election=10] [heartbeat=1]
    add-node ID                      a new, empty member (to join by a conf change)
    campaign ID                      ID starts an election now (MsgHup)
    propose ID DATA...               propose one entry per DATA
    propose-conf-change ID add|learner|remove N
    read-index ID CTX
    transfer-leadership FROM TO
    tick-election ID... | tick-heartbeat ID...   tick until that timeout elapses
    tick N ID...                     N ticks on each listed node (all if none)
    stabilize [ID...]                handle Readys and deliver messages until quiet
    process-ready ID...              handle one Ready of each node
    deliver-msgs ID...               deliver queued messages addressed to ID
    partition 1,2 3,4,5 | heal       cut the network into groups / reconnect
    compact ID                       snapshot at the applied index and drop the log before it
    crash ID | restart ID            lose everything not persisted / start from storage
    status                           one line per node
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass, field

from minietcd.errors import ProposalDroppedError
from minietcd.raft import describe
from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.config import Config
from minietcd.raft.rawnode import Peer, RawNode
from minietcd.raft.storage import MemoryStorage
from minietcd.raft.types import ConfChange, ConfChangeType, EntryType, Message, StateRole


@dataclass(slots=True)
class SimNode:
    node: RawNode
    storage: MemoryStorage
    applied: list[bytes] = field(default_factory=list)  # the state machine: applied data
    crashed: bool = False


class Interaction:
    def __init__(self) -> None:
        self.nodes: dict[int, SimNode] = {}
        self.inbox: list[Message] = []  # messages in flight, in send order
        self.groups: list[set[int]] | None = None  # partition, or None when healed
        self.opts: dict[str, int | bool] = {}
        self.out: list[str] = []

    # -- plumbing -----------------------------------------------------------------------------

    def say(self, line: str) -> None:
        self.out.append(line)

    def config(self, node_id: int, storage: MemoryStorage, applied: int = 0) -> Config:
        return Config(
            id=node_id,
            storage=storage,
            election_tick=int(self.opts.get("election", 10)),
            heartbeat_tick=int(self.opts.get("heartbeat", 1)),
            pre_vote=bool(self.opts.get("prevote", True)),
            check_quorum=bool(self.opts.get("checkquorum", True)),
            applied=applied,
            # Seeded per node: the randomised election timeouts are the same on every run.
            rng=random.Random(node_id),
        )

    def unreachable(self, m: Message) -> str:
        """Why ``m`` cannot arrive now ("" if it can): a partition or a crashed receiver."""
        target = self.nodes.get(m.to)
        if target is None or target.crashed:
            return f"n{m.to} is down"
        if not self.connected(m.from_, m.to):
            return "partitioned"
        return ""

    def connected(self, a: int, b: int) -> bool:
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    def handle_ready(self, nid: int) -> bool:
        sn = self.nodes[nid]
        if sn.crashed or not sn.node.has_ready():
            return False
        rd = sn.node.ready()
        self.say(f"> n{nid} handling Ready")
        for ev in rd.events:
            self.say(f"  {describe.event_line(ev)}")
        summary = describe.ready(nid, rd).split(" ", 2)
        if len(summary) > 2:
            self.say(f"  Ready: {summary[2]}")
        # 1. persist
        if rd.snapshot is not None:
            sn.storage.apply_snapshot(rd.snapshot)
            sn.applied = rd.snapshot.data.split(b",") if rd.snapshot.data else []
        sn.storage.append(rd.entries)
        if rd.hard_state is not None:
            sn.storage.set_hard_state(rd.hard_state)
        # 2. send
        for m in rd.messages:
            why = self.unreachable(m)
            if why:
                self.say(f"  {describe.message(m)} (lost: {why})")
            else:
                self.say(f"  {describe.message(m)}")
                self.inbox.append(m)
        # 3. apply
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                sn.node.apply_conf_change(decode_conf_change(e.data))
            elif e.data:
                sn.applied.append(e.data)
        for rs in rd.read_states:
            self.say(f"  read {rs.request_ctx.decode()} may be served once applied >= {rs.index}")
        # 4. advance
        sn.node.advance(rd)
        if rd.snapshot_needed:
            self.say(f"  n{nid} takes a new snapshot, as the Ready asks")
            self._snapshot(nid)
        return True

    def deliver(self, nid: int) -> bool:
        mine = [m for m in self.inbox if m.to == nid]
        if not mine:
            return False
        self.inbox = [m for m in self.inbox if m.to != nid]
        sn = self.nodes[nid]
        self.say(f"> n{nid} receiving messages")
        for m in mine:
            why = self.unreachable(m)
            if why:
                self.say(f"  {describe.message(m)} (lost: {why})")
                continue
            self.say(f"  {describe.message(m)}")
            try:
                sn.node.step(m)
            except ProposalDroppedError as e:
                self.say(f"  dropped: {e}")
        return True

    def stabilize(self, ids: list[int]) -> None:
        for _ in range(1000):
            moved = False
            for nid in ids:
                moved |= self.handle_ready(nid)
            for nid in ids:
                moved |= self.deliver(nid)
            if not moved:
                return
        raise AssertionError("stabilize did not settle within 1000 rounds")

    # -- commands ---------------------------------------------------------------------------

    def run(self, cmd: str, args: list[str]) -> str:
        self.out = []
        pos = [a for a in args if "=" not in a]
        kw = dict(a.split("=", 1) for a in args if "=" in a)
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        handler(pos, kw)
        return "\n".join(self.out) + ("\n" if self.out else "")

    def ids(self, pos: list[str]) -> list[int]:
        return [int(p) for p in pos] if pos else sorted(self.nodes)

    def cmd_add_nodes(self, pos: list[str], kw: dict[str, str]) -> None:
        n = int(pos[0])
        for k, v in kw.items():
            self.opts[k] = v == "true" if v in ("true", "false") else int(v)
        peers = [Peer(i) for i in range(1, n + 1)]
        for i in range(1, n + 1):
            st = MemoryStorage()
            node = RawNode(self.config(i, st))
            node.bootstrap(peers)
            self.nodes[i] = SimNode(node, st)
        # Persist and apply the bootstrap entries quietly: every script starts from here.
        saved, self.out = self.out, []
        self.stabilize(sorted(self.nodes))
        self.out = saved
        for i in range(1, n + 1):
            status = self.nodes[i].node.status()
            self.say(f"n{i}: term={status.hard_state.term} commit={status.hard_state.commit} "
                     f"{self.nodes[i].node.raft.conf_state_text()}")

    def cmd_add_node(self, pos: list[str], kw: dict[str, str]) -> None:
        nid = int(pos[0])
        st = MemoryStorage()
        self.nodes[nid] = SimNode(RawNode(self.config(nid, st)), st)
        self.say(f"n{nid}: empty, waiting to hear from a leader")

    def cmd_campaign(self, pos: list[str], kw: dict[str, str]) -> None:
        self.nodes[int(pos[0])].node.campaign()
        self.handle_ready(int(pos[0]))

    def cmd_propose(self, pos: list[str], kw: dict[str, str]) -> None:
        nid = int(pos[0])
        try:
            self.nodes[nid].node.propose_many([p.encode() for p in pos[1:]])
        except ProposalDroppedError as e:
            self.say(f"dropped: {e}")

    def cmd_propose_conf_change(self, pos: list[str], kw: dict[str, str]) -> None:
        kinds = {
            "add": ConfChangeType.ADD_NODE,
            "learner": ConfChangeType.ADD_LEARNER_NODE,
            "remove": ConfChangeType.REMOVE_NODE,
        }
        nid, kind, target = int(pos[0]), pos[1], int(pos[2])
        try:
            self.nodes[nid].node.propose_conf_change(ConfChange(kinds[kind], target))
        except ProposalDroppedError as e:
            self.say(f"dropped: {e}")

    def cmd_read_index(self, pos: list[str], kw: dict[str, str]) -> None:
        try:
            self.nodes[int(pos[0])].node.read_index(pos[1].encode())
        except ProposalDroppedError as e:
            self.say(f"dropped: {e}")

    def cmd_transfer_leadership(self, pos: list[str], kw: dict[str, str]) -> None:
        self.nodes[int(pos[0])].node.transfer_leader(int(pos[1]))

    def _tick_until(self, nid: int, ticks: int) -> None:
        for _ in range(ticks):
            self.nodes[nid].node.tick()

    def cmd_tick_election(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in self.ids(pos):
            r = self.nodes[nid].node.raft
            self._tick_until(nid, max(1, r.randomized_election_timeout - r.election_elapsed)
                             if r.state != StateRole.LEADER else r.election_timeout)

    def cmd_tick_heartbeat(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in self.ids(pos):
            self._tick_until(nid, self.nodes[nid].node.raft.heartbeat_timeout)

    def cmd_tick(self, pos: list[str], kw: dict[str, str]) -> None:
        n = int(pos[0])
        for nid in self.ids(pos[1:]):
            if not self.nodes[nid].crashed:
                self._tick_until(nid, n)

    def cmd_stabilize(self, pos: list[str], kw: dict[str, str]) -> None:
        self.stabilize(self.ids(pos))

    def cmd_process_ready(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in self.ids(pos):
            self.handle_ready(nid)

    def cmd_deliver_msgs(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in self.ids(pos):
            self.deliver(nid)

    def cmd_partition(self, pos: list[str], kw: dict[str, str]) -> None:
        self.groups = [{int(x) for x in g.split(",")} for g in pos]
        self.say("network: " + " | ".join(",".join(f"n{x}" for x in sorted(g)) for g in self.groups))

    def cmd_heal(self, pos: list[str], kw: dict[str, str]) -> None:
        self.groups = None
        self.say("network: healed")

    def _snapshot(self, nid: int) -> int:
        sn = self.nodes[nid]
        applied = sn.node.raft.raft_log.applied
        sn.storage.create_snapshot(applied, sn.node.raft.conf_state(), b",".join(sn.applied))
        return applied

    def cmd_compact(self, pos: list[str], kw: dict[str, str]) -> None:
        nid = int(pos[0])
        applied = self._snapshot(nid)
        sn = self.nodes[nid]
        sn.storage.compact(applied)
        self.say(f"n{nid}: snapshot at {applied}; log now starts at {sn.storage.first_index()}")

    def cmd_crash(self, pos: list[str], kw: dict[str, str]) -> None:
        nid = int(pos[0])
        self.nodes[nid].crashed = True
        self.inbox = [m for m in self.inbox if m.to != nid]
        self.say(f"n{nid}: crashed (keeps only what it persisted)")

    def cmd_restart(self, pos: list[str], kw: dict[str, str]) -> None:
        nid = int(pos[0])
        old = self.nodes[nid]
        snap = old.storage.snapshot()
        applied_data = snap.data.split(b",") if snap.data else []
        node = RawNode(self.config(nid, old.storage, applied=snap.metadata.index))
        self.nodes[nid] = SimNode(node, old.storage, applied_data)
        hs = node.status().hard_state
        self.say(f"n{nid}: restarted at term={hs.term} commit={hs.commit} "
                 f"log={old.storage.first_index()}..{old.storage.last_index()}")

    def cmd_status(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in self.ids(pos):
            sn = self.nodes[nid]
            if sn.crashed:
                self.say(f"n{nid}: crashed")
                continue
            st = sn.node.status()
            self.say(
                f"n{nid}: {st.soft_state.role} term={st.hard_state.term} "
                f"lead={describe.node(st.soft_state.lead)} commit={st.hard_state.commit} "
                f"applied={st.applied} last={st.last_index} "
                f"data=[{','.join(d.decode() for d in sn.applied)}]"
            )


def run_script(text: str) -> str:
    """Run a script; return it with every command's output replaced by the actual output."""
    env = Interaction()
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            out.append(line)
            i += 1
            continue
        words = shlex.split(line)
        out.append(line)
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"line {i}: expected '----' after command {line!r}")
        out.append("----")
        i += 1
        while i < len(lines) and lines[i].strip():  # old output runs to the next blank line
            i += 1
        try:
            result = env.run(words[0], words[1:])
        except Exception as e:  # show the failure in the transcript instead of aborting it
            result = f"error: {type(e).__name__}: {e}\n"
        out.extend(result.rstrip("\n").split("\n") if result else [])
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n"
