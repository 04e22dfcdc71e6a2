"""Real clusters of 1-9 ``minietcd`` processes on 127.0.0.1, found again from a state file.

``Cluster.up(lab_dir, spec)`` starts a Toxiproxy (see ``minietcd.lab.toxiproxy``; not when one
is given), creates a proxy for every directed peer link (``minietcd.lab.links``), starts the
members with etcd's static bootstrap flags and waits until they are healthy. Everything it
started is written to ``<lab dir>/lab.json`` as soon as it is started, so ``Cluster.load`` in a
later process (``minietcd-lab status``, ``kill``, ``down``...) works on the same cluster, and
``down`` stops exactly what ``up`` started: members, and the Toxiproxy if ``up`` started it.

Layout of a lab dir: ``lab.json``, ``data/nI`` (member data dirs), ``logs/nI.log`` (member
logs, kept by ``down``), ``logs/toxiproxy.log``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from minietcd.errors import LabError
from minietcd.lab import backend, probe, processes
from minietcd.lab.labdir import refuse_if_running, routable
from minietcd.lab.links import ROUTES_ENV, Links
from minietcd.lab.ports import PortPlan, cluster_purposes, free_ports, port_taken_in_logs
from minietcd.lab.state import HOST, LabState, MemberState
from minietcd.lab.toxiproxy import ToxiproxyHandle, start_toxiproxy
from minietcd.server.ids import member_id

MAX_SIZE = 9
_SCRUBBED_ENV_PREFIXES = ("ETCD_", "ETCDCTL_")  # etcd reads ETCD_* as flags: never inherit
_POLL = 0.05
_T = TypeVar("_T")
_SNAPSHOT_APPLIED = re.compile(r"raft: applied snapshot at index (\d+)")  # minietcd/server/raft_node.py


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


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


@dataclass(slots=True)
class ClusterSpec:
    """How to start a cluster. Timings are etcd's flags, in milliseconds."""

    size: int
    heartbeat_ms: int = 50
    election_ms: int = 500
    pre_vote: bool = False
    client_proxies: bool = False
    token: str = "minietcd-lab"
    extra_flags: Sequence[str] = field(default_factory=tuple)
    # Every port from this range (minietcd.lab.ports); None: random free ports.
    ports: PortPlan | None = None
    # The server's command (e.g. ("/usr/bin/etcd",)); empty: this minietcd. A server that is not
    # minietcd cannot have its peer links routed through Toxiproxy (see ``routable``).
    server: Sequence[str] = field(default_factory=tuple)

    def check(self) -> None:
        if not 1 <= self.size <= MAX_SIZE:
            raise LabError(f"a lab cluster has 1 to {MAX_SIZE} members, not {self.size}")
        if self.heartbeat_ms <= 0 or self.election_ms < 5 * self.heartbeat_ms:
            raise LabError(
                f"election timeout ({self.election_ms} ms) must be at least 5 heartbeats "
                f"({self.heartbeat_ms} ms each)"
            )


class Cluster(backend.StateMembers):
    """One lab cluster: its state file, its members' processes and its links."""

    def __init__(self, state: LabState, toxiproxy: ToxiproxyHandle | None = None) -> None:
        self.state = state
        self.links = Links(state)
        self._toxiproxy = toxiproxy  # held only by the process that started it

    # --- creation and loading ------------------------------------------------------------

    @classmethod
    def up(
        cls,
        lab_dir: Path,
        spec: ClusterSpec,
        *,
        detach: bool = False,
        toxiproxy_url: str | None = None,
        timeout: float = 60.0,
    ) -> Cluster:
        """Start a cluster in ``lab_dir`` and wait until it is healthy (``timeout`` seconds).

        ``detach``: the Toxiproxy started here outlives this process (for the CLI). With
        ``toxiproxy_url`` that Toxiproxy is used and never stopped by the lab. On any failure
        everything started so far is stopped again. A cluster recorded in ``lab_dir`` whose
        processes are all gone (a run that was killed) is cleared first; a live one is refused.
        """
        # Ports chosen at random, or among a --port-range, may be taken by someone else between
        # choosing and listening: choose again. Ports the user named exactly are not retried.
        attempts = 1 if spec.ports is not None and spec.ports.span is None else 3
        for attempt in range(1, attempts + 1):
            try:
                return cls._up_once(lab_dir, spec, detach, toxiproxy_url, timeout)
            except LabError as e:
                if attempt == attempts or "already in use" not in str(e):
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _up_once(
        cls, lab_dir: Path, spec: ClusterSpec, detach: bool, toxiproxy_url: str | None, timeout: float
    ) -> Cluster:
        spec.check()
        lab_dir = Path(lab_dir).resolve()
        if refuse_if_running(lab_dir):
            with contextlib.suppress(LabError):
                cls.load(lab_dir).down()  # left by a run that was killed: data, proxies on a shared Toxiproxy
        lab_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(lab_dir / "data", ignore_errors=True)  # left by a cluster that was not downed
        (lab_dir / "logs").mkdir(exist_ok=True)
        routed = routable(spec.server)
        names = [f"n{i + 1}" for i in range(spec.size)]
        purposes = cluster_purposes(names, spec.client_proxies, links=routed)
        own_toxiproxy = routed and toxiproxy_url is None
        if spec.ports is not None:
            ports = spec.ports.take((["toxiproxy API"] if own_toxiproxy else []) + purposes)
            toxiproxy_port = ports.pop(0) if own_toxiproxy else None
        else:
            ports, toxiproxy_port = free_ports(len(purposes)), None
        handle: ToxiproxyHandle | None = None
        if routed:
            environ: Mapping[str, str] | None = {"TOXIPROXY_URL": toxiproxy_url} if toxiproxy_url else None
            handle = start_toxiproxy(
                environ=environ,
                detached_log=lab_dir / "logs" / "toxiproxy.log" if detach else None,
                port=toxiproxy_port,
            )
        state = LabState(
            lab_dir=str(lab_dir),
            token=spec.token,
            heartbeat_ms=spec.heartbeat_ms,
            election_ms=spec.election_ms,
            pre_vote=spec.pre_vote,
            toxiproxy_url=handle.url if handle is not None else "",
            proxy_prefix=f"lab-{secrets.token_hex(3)}",
            toxiproxy_process=(
                None if handle is None or handle.process is None else processes.adopt(handle.process)
            ),
            extra_flags=list(spec.extra_flags),
            server=list(spec.server),
        )
        link_ports = ports[3 * spec.size :]
        for i, name in enumerate(names):
            client, peer, metrics = ports[3 * i : 3 * i + 3]
            state.members.append(
                MemberState(
                    name=name,
                    client_port=client,
                    peer_port=peer,
                    metrics_port=metrics,
                    member_id=member_id([f"http://{HOST}:{peer}"], spec.token),
                    data_dir=str(lab_dir / "data" / name),
                    log_path=str(lab_dir / "logs" / f"{name}.log"),
                )
            )
        cluster = cls(state, handle if not detach else None)
        try:
            state.save()
            if routed:
                cluster.links.create_all(link_ports, client_proxies=spec.client_proxies)
                state.save()
            for m in state.members:
                Path(m.log_path).write_text("")  # a fresh log per cluster
                cluster.start(m.name)
            cluster.wait_healthy(timeout)
        except BaseException as e:
            with contextlib.suppress(Exception):
                cluster.down()
            taken = port_taken_in_logs(state.members) if isinstance(e, LabError) else None
            if taken is not None:
                raise LabError(taken) from None
            raise
        return cluster

    @classmethod
    def load(cls, lab_dir: Path) -> Cluster:
        return cls(LabState.load(Path(lab_dir).resolve()))

    # --- members (members, names, member: backend.StateMembers) -------------------------------

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def command(self, m: MemberState) -> list[str]:
        s = self.state
        flags = [
            "--name", m.name,
            "--data-dir", m.data_dir,
            "--listen-client-urls", m.listen_client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", self.initial_cluster(),
            "--initial-cluster-token", s.token,
            "--initial-cluster-state", m.initial_cluster_state,
            "--listen-metrics-urls", m.metrics_url,
            "--heartbeat-interval", str(s.heartbeat_ms),
            "--election-timeout", str(s.election_ms),
        ]  # fmt: skip
        if s.pre_vote:
            flags.append("--pre-vote")
        server = s.server or [sys.executable, "-m", "minietcd.server"]
        return [*server, *flags, *s.extra_flags]

    def environment(self, m: MemberState) -> dict[str, str]:
        import minietcd

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k != ROUTES_ENV
        }
        root = str(Path(minietcd.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env.update(self.links.routes_env(m))
        return env

    def process_state(self, name: str) -> str:
        """``running``, ``paused`` (SIGSTOP) or ``killed`` (not running)."""
        st = processes.state(self.member(name).process)
        return {"running": "running", "stopped": "paused", "gone": "killed"}[st]

    def running(self) -> list[str]:
        return [m.name for m in self.members if self.process_state(m.name) != "killed"]

    def start(self, name: str) -> None:
        """Start member ``name`` (on its data dir, which it keeps across restarts)."""
        m = self.member(name)
        if processes.alive(m.process):
            raise LabError(f"{name} is already running (pid {m.process.pid if m.process else '?'})")
        Path(m.data_dir).parent.mkdir(parents=True, exist_ok=True)
        m.process = processes.spawn(
            self.command(m), log_path=Path(m.log_path), env=self.environment(m), cwd=Path(self.state.lab_dir)
        )
        self.state.save()

    def kill(self, name: str) -> None:
        """SIGKILL member ``name`` (its whole process group) and wait until it is gone."""
        m = self.member(name)
        if not processes.alive(m.process):
            raise LabError(f"{name} is not running")
        processes.kill(m.process)
        self.state.save()

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to member ``name``; for SIGSTOP / SIGCONT, wait until it took effect."""
        m = self.member(name)
        if m.process is None or not processes.alive(m.process):
            raise LabError(f"{name} is not running")
        processes.signal_group(m.process, sig)
        if sig == signal.SIGSTOP:
            processes.wait_state(m.process, "stopped")
        elif sig == signal.SIGCONT:
            processes.wait_state(m.process, "running")

    # --- membership changes ----------------------------------------------------------------

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
        self, rep: Replacement, made: Callable[[MemberState, list[probe.ListedMember]], _T | None]
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

    def remove_member(self, rep: Replacement, *, via: str | None = None, timeout: float = 30.0) -> None:
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

    def wipe(self, name: str) -> None:
        """SIGKILL member ``name`` if it runs and delete its data dir (for a removed member)."""
        m = self.member(name)
        processes.kill(m.process)
        m.process = None
        shutil.rmtree(m.data_dir, ignore_errors=True)
        self.state.save()

    def add_member(self, rep: Replacement, *, via: str | None = None, timeout: float = 30.0) -> int:
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
        try:
            with open(self.member(rep.name).log_path, "rb") as f:
                f.seek(rep.log_offset)
                text = f.read(None if until is None else max(0, until - rep.log_offset))
        except OSError:
            return None
        match = _SNAPSHOT_APPLIED.search(text.decode(errors="replace"))
        return int(match.group(1)) if match else None

    def start_joined(self, rep: Replacement) -> None:
        """Start the fresh member of ``rep`` (added with :meth:`add_member`) on an empty data dir."""
        rep.log_offset = Path(self.member(rep.name).log_path).stat().st_size
        self.start(rep.name)
        rep.started = True

    def replace_member(self, name: str, *, via: str | None = None, timeout: float = 60.0) -> Replacement:
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

    # --- waiting -------------------------------------------------------------------------

    def wait_healthy(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> str:
        """Wait until the members ``names`` (default: all that run) answer, agree on one leader
        among them and serve a linearizable read; return the leader's name."""
        return backend.wait_healthy(self, timeout, names)

    def endpoints(self, names: Iterable[str] | None = None) -> list[str]:
        chosen = list(names) if names is not None else self.names
        return [self.member(n).client_url for n in chosen]

    def log_tails(self, lines: int = 20) -> str:
        return "\n".join(
            f"----- {m.name} ({m.log_path}) -----\n{tail(m.log_path, lines)}" for m in self.members
        )

    def fail(self, message: str) -> None:
        raise LabError(f"{message}\n{self.log_tails()}")

    # --- teardown ------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every member and the Toxiproxy this lab started, delete its proxies (on a
        Toxiproxy it did not start), data dirs and state file; keep the logs. Returns what
        was stopped."""
        stopped: list[str] = []
        errors: list[str] = []
        for m in self.members:
            if processes.alive(m.process):
                try:
                    processes.kill(m.process)
                    stopped.append(m.name)
                except LabError as e:
                    errors.append(f"{m.name}: {e}")
            m.process = None
        s = self.state
        if not s.toxiproxy_url:
            pass  # no links (a server that is not minietcd): no Toxiproxy
        elif s.toxiproxy_process is None:
            try:
                self.links.destroy_all()
            except Exception as e:  # Toxiproxy gone: nothing left to delete
                errors.append(f"deleting proxies on {s.toxiproxy_url}: {e}")
        else:
            if processes.alive(s.toxiproxy_process):
                try:
                    processes.kill(s.toxiproxy_process, timeout=5.0, sig=signal.SIGTERM)
                    stopped.append(f"toxiproxy ({s.toxiproxy_url})")
                except LabError as e:
                    errors.append(f"toxiproxy: {e}")
            s.toxiproxy_process = None
        if self._toxiproxy is not None:
            self._toxiproxy.close()
            self._toxiproxy = None
        if errors:
            s.save()
            raise LabError("down left things behind: " + "; ".join(errors))
        shutil.rmtree(Path(s.lab_dir) / "data", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            s.path.unlink()
        return stopped
