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
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minietcd.errors import LabError, LabPortTakenError
from minietcd.lab import backend, processes
from minietcd.lab.ids import member_id
from minietcd.lab.labdir import refuse_if_running, routable
from minietcd.lab.links import ROUTES_ENV, Links
from minietcd.lab.membership import MembershipChanges
from minietcd.lab.membership import Replacement as Replacement  # (imported from here by callers)
from minietcd.lab.membership import outcome_unknown as outcome_unknown
from minietcd.lab.ports import PortPlan, cluster_purposes, free_ports, port_taken_in_logs
from minietcd.lab.state import HOST, LabState, MemberState
from minietcd.lab.toxiproxy import ToxiproxyHandle, start_toxiproxy

MAX_SIZE = 9
_SCRUBBED_ENV_PREFIXES = ("ETCD_", "ETCDCTL_")  # etcd reads ETCD_* as flags: never inherit
_POLL = 0.05


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


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


class Cluster(MembershipChanges):
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
            except LabPortTakenError:
                if attempt == attempts:
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
                raise LabPortTakenError(taken) from None
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

    # --- members and logs as membership.MembershipChanges needs them -----------------------

    def wipe(self, name: str) -> None:
        """SIGKILL member ``name`` if it runs and delete its data dir (for a removed member)."""
        m = self.member(name)
        processes.kill(m.process)
        m.process = None
        shutil.rmtree(m.data_dir, ignore_errors=True)
        self.state.save()

    def log_bytes(self, name: str) -> bytes:
        """Member ``name``'s whole log (every run of it in this lab)."""
        try:
            return Path(self.member(name).log_path).read_bytes()
        except OSError:
            return b""

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
