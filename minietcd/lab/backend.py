"""What the lab's commands need from a cluster, whatever runs its members.

Two backends provide it: ``minietcd.lab.cluster.Cluster`` (members are processes on 127.0.0.1)
and ``minietcd.lab.compose.ComposeCluster`` (members are containers of a docker compose project,
reached through their published ports). Both describe their members and links with the same
``LabState`` (``minietcd.lab.state``) and drive the links through the same ``Links``
(``minietcd.lab.links``), so ``Faults``, ``status`` and the fault table work on either.

A member's process state is one of ``running``, ``paused`` or ``killed`` (not running);
``signal`` takes SIGSTOP / SIGCONT (pause / resume) and waits until it took effect.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.links import Links
from minietcd.lab.state import LabState, MemberState

if TYPE_CHECKING:
    from minietcd.lab.membership import Replacement

_POLL = 0.05
_STATE_EVERY = 0.5


class LabCluster(Protocol):
    """A running lab cluster (see the module docstring)."""

    state: LabState
    links: Links

    @property
    def members(self) -> list[MemberState]: ...

    @property
    def names(self) -> list[str]: ...

    def member(self, name: str) -> MemberState: ...

    def process_state(self, name: str) -> str: ...

    def running(self) -> list[str]: ...

    def start(self, name: str) -> None: ...

    def kill(self, name: str) -> None: ...

    def signal(self, name: str, sig: signal.Signals) -> None: ...

    def wait_healthy(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> str: ...

    def endpoints_line(self) -> str: ...

    def log_tails(self, lines: int = 20) -> str: ...

    def down(self) -> list[str]: ...

    def replace_member(self, name: str, *, via: str | None = None, timeout: float = 60.0) -> Replacement: ...


class StateMembers:
    """The member lookups every backend answers from its ``LabState``."""

    state: LabState

    @property
    def members(self) -> list[MemberState]:
        return self.state.members

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.state.members]

    def member(self, name: str) -> MemberState:
        return self.state.member(name)

    def endpoints_line(self) -> str:
        return "ETCDCTL_ENDPOINTS=" + ",".join(m.client_url for m in self.state.members)


def load_cluster(lab_dir: Path) -> LabCluster:
    """The cluster recorded in ``lab_dir``, local or compose (the state says which)."""
    from minietcd.lab.compose import ComposeCluster, is_compose_lab

    if is_compose_lab(Path(lab_dir)):
        return ComposeCluster.load(lab_dir)
    from minietcd.lab.cluster import Cluster

    return Cluster.load(lab_dir)


def health_problems(cluster: LabCluster, wanted: list[str]) -> tuple[str | None, list[str]]:
    """One look at ``wanted``: (the leader they all agree on, if it is one of them and they all
    serve a linearizable read; else None) and what is wrong."""
    problems: list[str] = []
    leaders: set[int] = set()
    for n in wanted:
        m = cluster.member(n)
        try:
            st = probe.status(m.client_port)
            if st.leader == 0:
                problems.append(f"{n}: no leader")
                continue
            leaders.add(st.leader)
            probe.get(m.client_port, "health", timeout=1.0)
        except probe.ProbeError as e:
            problems.append(f"{n}: {e}")
    if problems:
        return None, problems
    if len(leaders) != 1:
        return None, [f"members disagree on the leader: {sorted(f'{x:x}' for x in leaders)}"]
    leader = cluster.state.member_by_id(leaders.pop())
    if leader is None or leader.name not in wanted:
        return None, ["the leader is not among the members waited for"]
    return leader.name, []


def wait_healthy(cluster: LabCluster, timeout: float, names: Iterable[str] | None = None) -> str:
    """Poll until the members ``names`` (default: all that run) answer, agree on one leader among
    them and serve a linearizable read; return the leader's name. A member that stops running,
    or the deadline, is a LabError naming what was wrong, with the members' log tails."""
    wanted = list(names) if names is not None else cluster.running()
    for n in wanted:
        cluster.member(n)
    if not wanted:
        raise LabError("no member is running")
    deadline = time.monotonic() + timeout
    next_check = 0.0
    while True:
        # Process states cost a `docker inspect` each on a compose cluster: look twice a second.
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + _STATE_EVERY
            for n in wanted:
                if cluster.process_state(n) == "killed":
                    raise LabError(
                        f"{n} exited while waiting for the cluster to be healthy\n{cluster.log_tails()}"
                    )
        leader, problems = health_problems(cluster, wanted)
        if leader is not None:
            return leader
        if time.monotonic() >= deadline:
            raise LabError(
                f"cluster not healthy after {timeout:.0f}s: "
                + "; ".join(problems)
                + "\n"
                + cluster.log_tails()
            )
        time.sleep(_POLL)
