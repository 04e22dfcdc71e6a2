"""Membership changes on a lab cluster, made as an etcd operator makes them (local processes
or compose containers alike: ``MembershipChanges`` is a mixin of both ``Cluster`` and
``ComposeCluster``).

Replacing a failed member: MemberRemove through a survivor, stop it and wipe its data, MemberAdd
the same name and peer URL (etcd gives it a new id), start it with ``--initial-cluster-state
existing``, wait until healthy. etcd refuses changes while the cluster is unhealthy and answers
some of them after they took effect or not at all, so every step is retried, and a step whose
answer was lost is decided by the survivors' MemberList. What a backend provides: ``wipe``
(stop the member and delete its data), ``start`` (which joins once the member is marked
``existing``) and ``log_bytes`` (the member's whole log, to see how it caught up).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.backend import StateMembers
from minietcd.lab.state import MemberState

_T = TypeVar("_T")
_SNAPSHOT_APPLIED = re.compile(rb"raft: applied snapshot at index (\d+)")  # minietcd/server/raft_node.py


# Answers after which a membership change is worth retrying: etcd refuses a change while the
# cluster is unhealthy or not enough members have started (--strict-reconfig-check), or while
# another change is not applied yet, and a change cut short by a leader change or a timeout may
# not have happened. Anything else (bad request, unknown member) will not get better.
_RETRIABLE = (
    "unhealthy cluster",
    "not enough started members",
    "request timed out",
    "leader changed",
    "no leader",
    "conf change",
    "configuration change",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
)
# Among those, the refusals that prove the change was not made (checked before it is proposed,
# or never sent). After any other (a timeout, a leader change, a connection lost mid-call) the
# change may have been committed although its answer was lost: only MemberList can tell.
_REFUSED_UNMADE = (
    "unhealthy cluster",
    "not enough started members",
    "failed to connect",
    "connection refused",
)


def outcome_unknown(answer: str) -> bool:
    """A retriable answer after which the change may nevertheless have been made."""
    return any(r in answer for r in _RETRIABLE) and not any(r in answer for r in _REFUSED_UNMADE)


def removal_seen(rep: Replacement, listed: Sequence[probe.ListedMember]) -> bool:
    """``listed`` (a survivor's MemberList) shows that the removal of ``rep.old_id`` was applied.
    A survivor's list is served locally: one that lags may still show the old id, but none
    drops it before the removal was committed."""
    return bool(listed) and all(m.id != rep.old_id for m in listed)


def added_id(rep: Replacement, peer_url: str, listed: Sequence[probe.ListedMember]) -> int | None:
    """The id under which ``listed`` shows ``peer_url`` added back (not ``rep.old_id``: a survivor
    that lags still lists the removed member with that URL), or None."""
    for m in listed:
        if peer_url in m.peer_urls and m.id != rep.old_id:
            return m.id
    return None


@dataclass(slots=True)
class Replacement:
    """One member replaced the way an etcd operator replaces a failed one: MemberRemove through
    a surviving member, stop it and wipe its data dir, MemberAdd the same name and peer URL
    (a new member id), start it with ``--initial-cluster-state existing``."""

    name: str
    old_id: int
    was_leader: bool = False
    new_id: int = 0
    removed_via: str = ""
    added_via: str = ""
    refusals: list[str] = field(default_factory=list)  # "remove via n2: etcdserver: unhealthy cluster"
    log_offset: int = 0  # size of the member's log when the fresh member was started
    started: bool = False  # the fresh member was started (the replacement is complete)

    def describe(self) -> str:
        new = f"{self.new_id:x}" if self.new_id else "?"
        text = f"{self.name}{' (leader)' if self.was_leader else ''} {self.old_id:x} -> {new}"
        counts = [(what, sum(r.startswith(f"{what} ") for r in self.refusals)) for what in ("remove", "add")]
        refused = [f"{what} refused {n}x" for what, n in counts if n]
        if refused:
            text += f" ({', '.join(refused)}: {_short(self.refusals[-1])})"
        return text


def _short(refusal: str) -> str:
    """ "remove via n1: UNAVAILABLE: etcdserver: unhealthy cluster" -> "unhealthy cluster"."""
    return refusal.rsplit(": ", 1)[-1][:80]


class MembershipChanges(StateMembers):
    """Membership changes for a lab cluster (see the module docstring). The cluster it is mixed
    into provides what is stubbed here: its processes (or containers) and its members' logs."""

    def process_state(self, name: str) -> str:
        raise NotImplementedError

    def start(self, name: str) -> None:
        raise NotImplementedError

    def wipe(self, name: str) -> None:
        """Stop member ``name`` and delete its data (for a removed member)."""
        raise NotImplementedError

    def log_bytes(self, name: str) -> bytes:
        """Member ``name``'s whole log (every run of it in this lab)."""
        raise NotImplementedError

    def wait_healthy(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> str:
        raise NotImplementedError

    @contextlib.contextmanager
    def _membership_lock(self) -> Iterator[None]:
        """One membership change at a time per lab, across processes (etcd refuses a second
        one while the first is not applied; this keeps two lab commands from racing)."""
        with open(Path(self.state.lab_dir) / "membership.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _via_candidates(self, target: str, via: str | None) -> list[str]:
        if via is not None:
            if via == target:
                raise LabError(f"{target} cannot be removed or added through itself")
            return [via]
        names = [n for n in self.names if n != target and self.process_state(n) == "running"]
        if not names:
            raise LabError(f"no running member other than {target} to change the membership through")
        return names

    def _retrying(
        self,
        what: str,
        rep: Replacement,
        via: str | None,
        timeout: float,
        attempt: Callable[[MemberState], _T],
        made: Callable[[MemberState, list[probe.ListedMember]], _T | None],
    ) -> _T:
        """Call ``attempt(via_member)`` until it returns, cycling through the running members
        other than ``rep.name``; retriable refusals are recorded in ``rep.refusals`` and retried
        after a pause (1 s: the HEALTH_INTERVAL check needs time, not hammering), anything else
        raises. After an answer that leaves the outcome unknown (a timeout: the change may have
        been committed all the same), and at the deadline, the survivors' MemberList decides:
        ``made(survivor, listed)`` returns the result when it shows the change done. LabError
        when the change is still not made at the deadline."""
        deadline = time.monotonic() + timeout
        turn = 0
        while True:
            candidates = self._via_candidates(rep.name, via)
            name = candidates[turn % len(candidates)]
            turn += 1
            try:
                return attempt(self.member(name))
            except probe.ProbeError as e:
                text = str(e)
                if not any(r in text for r in _RETRIABLE):
                    raise LabError(f"{what} {rep.name} through {name}: {text}") from None
                rep.refusals.append(f"{what} via {name}: {text}")
            last_deadline = time.monotonic() + 1.0 >= deadline
            if last_deadline or outcome_unknown(text):
                done, seen = self._made_per_member_list(rep, made)
                if done is not None:
                    return done
                if last_deadline:
                    raise LabError(
                        f"{what} {rep.name}: still refused after {timeout:.0f}s ({rep.refusals[-1]}; {seen})"
                    )
            time.sleep(1.0)

    def _made_per_member_list(
        self,
        rep: Replacement,
        made: Callable[[MemberState, list[probe.ListedMember]], _T | None],
    ) -> tuple[_T | None, str]:
        """Ask every running survivor for MemberList until one shows the change made: (its
        ``made`` result, "") or (None, what the lists said)."""
        said: list[str] = []
        for name in [n for n in self.names if n != rep.name and self.process_state(n) == "running"]:
            survivor = self.member(name)
            try:
                listed = probe.member_list(survivor.client_port)
            except probe.ProbeError as e:
                said.append(f"{name} did not answer ({e})")
                continue
            done = made(survivor, listed)
            if done is not None:
                return done, ""
            said.append(f"{name}'s does not show it")
        return None, "MemberList: " + (", ".join(said) if said else "no survivor running to ask")

    def remove_member(
        self, rep: Replacement, *, via: str | None = None, timeout: float = 30.0
    ) -> None:
        """MemberRemove ``rep.name`` (id ``rep.old_id``) through ``via`` (default: any running
        member but that one), retrying while etcd refuses (unhealthy cluster...) until
        ``timeout``; refusals are recorded in ``rep``. A removal whose answer was lost (a
        timeout) counts once a survivor's MemberList lacks the old id. The member's process is
        left alone (a removed member stops by itself once it learns it). LabError if still not
        removed at the deadline, or if fewer than 3 members would leave one that no failure may
        then hit."""
        if len(self.members) < 3:
            raise LabError(
                f"refusing to remove {rep.name}: a {len(self.members)}-member cluster would be left "
                "with fewer than 2 members"
            )

        def made(via_m: MemberState, listed: list[probe.ListedMember]) -> str | None:
            return via_m.name if removal_seen(rep, listed) else None

        def attempt(via_m: MemberState) -> str:
            try:
                probe.member_remove(via_m.client_port, rep.old_id)
            except probe.ProbeError as e:
                # A retry of a removal that did happen (the earlier answer was lost): done.
                if "member not found" not in str(e) and "ID removed" not in str(e):
                    raise
                if made(via_m, probe.member_list(via_m.client_port)) is None:
                    raise
            return via_m.name

        with self._membership_lock():
            rep.removed_via = self._retrying("remove", rep, via, timeout, attempt, made)

    def add_member(
        self, rep: Replacement, *, via: str | None = None, timeout: float = 30.0
    ) -> int:
        """MemberAdd ``rep.name`` back with its peer URL (etcd gives it a new id), retrying
        while refused until ``timeout``; save the new id and mark the member as joining an
        existing cluster. Start it with :meth:`start`. Returns the new id."""
        m = self.member(rep.name)

        def made(via_m: MemberState, listed: list[probe.ListedMember]) -> tuple[str, int] | None:
            new_id = added_id(rep, m.peer_url, listed)
            return None if new_id is None else (via_m.name, new_id)

        def attempt(via_m: MemberState) -> tuple[str, int]:
            try:
                return via_m.name, probe.member_add(via_m.client_port, [m.peer_url])
            except probe.ProbeError as e:
                if "Peer URLs already exists" not in str(e):
                    raise
                # An earlier attempt whose answer was lost did add it: take that member's id.
                done = made(via_m, probe.member_list(via_m.client_port))
                if done is None:
                    raise
                return done

        with self._membership_lock():
            rep.added_via, rep.new_id = self._retrying("add", rep, via, timeout, attempt, made)
        m.member_id = rep.new_id
        m.initial_cluster_state = "existing"
        self.state.save()
        return rep.new_id

    def leader(self, timeout: float = 0.5) -> str | None:
        """The leader's name as the first running member that knows one says, or None."""
        for m in self.members:
            if self.process_state(m.name) != "running":
                continue
            with contextlib.suppress(probe.ProbeError):
                st = probe.status(m.client_port, timeout=timeout)
                if st.leader:
                    lm = self.state.member_by_id(st.leader)
                    return lm.name if lm else None
        return None

    def caught_up_by_snapshot(self, rep: Replacement, until: int | None = None) -> int | None:
        """The index of the first snapshot the fresh member of ``rep`` applied, or None if it
        caught up from log entries alone: read from its log since it started, up to offset
        ``until`` (where a later replacement of the same member began). Restarts in between
        count: a member killed while joining catches up in its next run."""
        text = self.log_bytes(rep.name)[rep.log_offset : until]
        match = _SNAPSHOT_APPLIED.search(text)
        return int(match.group(1)) if match else None

    def start_joined(self, rep: Replacement) -> None:
        """Start the fresh member of ``rep`` (added with ``add_member``) on empty data."""
        rep.log_offset = len(self.log_bytes(rep.name))
        self.start(rep.name)
        rep.started = True

    def replace_member(
        self, name: str, *, via: str | None = None, timeout: float = 60.0
    ) -> Replacement:
        """Replace ``name`` (running or not) with a fresh member of the same name and ports:
        remove, stop and wipe, add, start joining, and wait until the cluster is healthy with
        it (``timeout`` seconds for each step)."""
        rep = Replacement(name, self.member(name).member_id, was_leader=self.leader() == name)
        self.remove_member(rep, via=via, timeout=timeout)
        self.wipe(name)
        # Removing the leader costs an election: an add sent before it would be forwarded to
        # the gone leader and time out. Wait for the rest to agree on a new one first.
        self.wait_healthy(timeout)
        self.add_member(rep, via=via, timeout=timeout)
        self.start_joined(rep)
        self.wait_healthy(timeout)
        return rep
