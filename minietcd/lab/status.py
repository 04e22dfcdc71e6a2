"""What ``minietcd-lab status`` shows: one row per member, from Maintenance.Status, /health,
the member's process (or container) and the faults in force (asked of every member at once).
Works on local and compose clusters alike: members are asked through their client and metrics
ports on 127.0.0.1 (published ports, for containers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from minietcd.lab import probe
from minietcd.lab.backend import LabCluster
from minietcd.lab.faults import Faults


@dataclass(slots=True)
class MemberRow:
    name: str
    member_id: str
    endpoint: str
    process: str  # running / paused / killed
    role: str  # leader / follower / learner / no leader / down
    term: int | None = None
    raft_index: int | None = None
    applied_index: int | None = None
    leader: str = ""
    health: str = ""
    faults: list[str] = field(default_factory=list)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(cluster: LabCluster, name: str) -> MemberRow:
    m = cluster.member(name)
    row = MemberRow(name, f"{m.member_id:x}", m.client_url, cluster.process_state(name), "down")
    if row.process != "running":
        row.health = row.process
        return row
    try:
        st = probe.status(m.client_port)
    except probe.ProbeError as e:
        row.error = str(e)
        row.health = "unreachable"
        return row
    if st.is_learner:
        row.role = "learner"
    elif st.leader == 0:
        row.role = "no leader"
    else:
        row.role = "leader" if st.is_leader else "follower"
    row.term, row.raft_index, row.applied_index = st.term, st.raft_index, st.applied_index
    leader = cluster.state.member_by_id(st.leader)
    row.leader = leader.name if leader is not None else (f"{st.leader:x}" if st.leader else "")
    row.health = probe.health(m.metrics_port)
    return row


def collect(cluster: LabCluster) -> list[MemberRow]:
    with ThreadPoolExecutor(max_workers=len(cluster.names)) as pool:
        rows = list(pool.map(lambda n: _row(cluster, n), cluster.names))
    faults = Faults(cluster).in_force()
    for row in rows:
        row.faults = [f for f in faults.get(row.name, []) if f not in ("killed", "paused")]
    return rows
