"""What a person does to a lab cluster besides faults: write a key, move the leadership, take a
member out and put it back. ``minietcd-lab transfer/remove/add`` and the web view's buttons
both call these, so a lesson on the page does exactly what the commands do.

* :func:`put`: one linearizable put through the leader (or a member given), as
  ``etcdctl --endpoints=<that member> put KEY VALUE`` would.
* :func:`transfer_leader`: etcd's ``MoveLeader`` sent to the current leader
  (``etcdctl move-leader``); the leader hands over with MsgTimeoutNow (Raft thesis 3.10).
* :func:`remove_member` / :func:`add_member`: ``MemberRemove`` through a running member (the
  removed member stops by itself once it applies its removal; the lab wipes its data dir), and
  ``MemberAdd`` of the same name and peer URL (a new member id: etcd never reuses one), then
  the member is started on an empty data dir with ``--initial-cluster-state existing``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.backend import LabCluster
from minietcd.lab.cluster import Cluster, Replacement

PUT_TIMEOUT = 5.0  # seconds a put may take (a cluster without a quorum never answers)


@dataclass(slots=True, frozen=True)
class PutResult:
    via: str  # the member the put was sent to
    revision: int


def leader(cluster: LabCluster) -> str | None:
    """The leader's name as the running members report it, or None. Every member is asked: in a
    partition, a member cut off with an old leader may still name it; the leader named in the
    highest term wins (Raft: at most one leader per term)."""
    named: list[tuple[int, int]] = []
    for m in cluster.members:
        if cluster.process_state(m.name) != "running":
            continue
        with contextlib.suppress(probe.ProbeError):
            st = probe.status(m.client_port, timeout=0.5)
            if st.leader:
                named.append((st.term, st.leader))
    if not named:
        return None
    lm = cluster.state.member_by_id(max(named)[1])
    return lm.name if lm else None


def put(cluster: LabCluster, key: str, value: str, via: str | None = None,
        timeout: float = PUT_TIMEOUT) -> PutResult:
    """Put ``key`` = ``value`` through ``via`` (default: the leader, else the first running
    member); LabError with etcd's answer if it fails."""
    if not key:
        raise LabError("a put needs a key")
    if via is None:
        via = leader(cluster) or next(
            (n for n in cluster.names if cluster.process_state(n) == "running"), None
        )
        if via is None:
            raise LabError("no member is running to put through")
    m = cluster.member(via)
    try:
        rev = probe.put(m.client_port, key, value, timeout=timeout)
    except probe.ProbeError as e:
        raise LabError(f"put {key} through {via}: {e}") from None
    return PutResult(via, rev)


def transfer_leader(cluster: LabCluster, target: str, timeout: float = 5.0) -> str:
    """Make ``target`` the leader (MoveLeader through the current leader); returns the name of
    the leader it took over from."""
    tm = cluster.member(target)
    current = leader(cluster)
    if current is None:
        raise LabError("there is no leader to transfer the leadership from")
    if current == target:
        raise LabError(f"{target} is already the leader")
    lm = cluster.member(current)
    try:
        probe.move_leader(lm.client_port, tm.member_id, timeout=timeout)
    except probe.ProbeError as e:
        raise LabError(f"move leader {current} -> {target}: {e}") from None
    return current


def _local(cluster: LabCluster, what: str) -> Cluster:
    if not isinstance(cluster, Cluster):
        raise LabError(f"{what} works on process clusters only, not on --compose ones yet")
    return cluster


def listed_ids(cluster: LabCluster) -> set[int] | None:
    """Member ids in the MemberList of the first running member that answers (None: none did)."""
    for m in cluster.members:
        if cluster.process_state(m.name) != "running":
            continue
        with contextlib.suppress(probe.ProbeError):
            return {x.id for x in probe.member_list(m.client_port)}
    return None


def remove_member(cluster: LabCluster, name: str, timeout: float = 30.0) -> Replacement:
    """MemberRemove ``name`` through a running member, then stop it (if it has not stopped by
    itself) and wipe its data dir. Returns what was done (ids, refusals)."""
    local = _local(cluster, "remove")
    m = local.member(name)
    ids = listed_ids(local)
    if ids is not None and m.member_id not in ids:
        raise LabError(f"{name} is not a member (add it back with `minietcd-lab add {name}`)")
    rep = Replacement(name, m.member_id, was_leader=leader(local) == name)
    local.remove_member(rep, timeout=timeout)
    local.wipe(name)
    return rep


def add_member(cluster: LabCluster, name: str, timeout: float = 30.0) -> Replacement:
    """MemberAdd ``name`` (removed earlier) with its peer URL, and start it joining on an empty
    data dir. Returns what was done (its new id in ``new_id``)."""
    local = _local(cluster, "add")
    m = local.member(name)
    ids = listed_ids(local)
    if ids is None:
        raise LabError("no running member answers MemberList: cannot add a member now")
    if m.member_id in ids:
        raise LabError(f"{name} is a member already (remove it first with `minietcd-lab remove {name}`)")
    if local.process_state(name) != "killed":
        raise LabError(f"{name} is still running: it must be stopped before it joins again")
    local.wipe(name)  # a stale data dir would restart the old member, not join as a new one
    rep = Replacement(name, m.member_id)
    local.add_member(rep, timeout=timeout)
    local.start_joined(rep)
    return rep
