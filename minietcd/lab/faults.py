"""Faults on a lab cluster: processes (kill, restart, pause, resume) and links (partition, isolate,
slow, blackhole, flaky), and undoing them (heal, reset).

Link faults are Toxiproxy operations on the proxy of each directed link (``minietcd.lab.links``):

==========================  =================================================================
``partition G1 G2 ...``     the network becomes exactly these groups: every link crossing
                            groups is disabled (both directions), every other link enabled.
                            Members named in no group form one more group.
``isolate n3``              every link to and from n3 disabled (adds to what is in force)
``heal``                    every link enabled again (toxics stay)
``slow n1->n2``             ``latency`` toxic (with jitter) on what n1 sends to n2
``blackhole n1->n2``        ``timeout`` toxic with timeout 0: what n1 sends to n2 is dropped
                            and the connection hangs; n1's transport notices by its probe
``flaky n1->n2 -p 0.3``     the blackhole on a fraction of n1's connections to n2 (Toxiproxy
                            toxicity, rolled per connection): the link works, then silently
                            stops until n1 reconnects, and rolls again
``reset``                   heal, remove every toxic, resume paused members (killed members
                            stay down: ``restart`` them)
==========================  =================================================================
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable, Sequence

from minietcd.errors import LabError
from minietcd.lab.backend import LabCluster
from minietcd.lab.state import LinkState


class LinkFaultsUnsupported(LabError):
    """A link fault asked of a cluster whose members are not routed through Toxiproxy (etcd)."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|us|µs)?\s*$")


def parse_duration_ms(text: str) -> int:
    """``"200ms"``, ``"1.5s"``, ``"200"`` (milliseconds) -> whole milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise LabError(f"bad duration {text!r}: use e.g. 200ms or 1.5s")
    value, unit = float(match.group(1)), match.group(2) or "ms"
    scale = {"ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}[unit]
    return round(value * scale)


def parse_link(text: str) -> tuple[str, str]:
    """``"n1->n2"`` -> ("n1", "n2")."""
    parts = [p.strip() for p in text.split("->")]
    if len(parts) != 2 or not all(parts):
        raise LabError(f"bad link {text!r}: write it as SRC->DST, e.g. n1->n2")
    return parts[0], parts[1]


def parse_groups(texts: Sequence[str]) -> list[list[str]]:
    """``["n1,n2", "n3,n4,n5"]`` -> [["n1", "n2"], ["n3", "n4", "n5"]]."""
    return [[n.strip() for n in t.split(",") if n.strip()] for t in texts]


class Faults:
    """Faults on any lab cluster (local processes or compose containers: ``minietcd.lab.backend``)."""

    def __init__(self, cluster: LabCluster) -> None:
        self.cluster = cluster

    # --- processes -----------------------------------------------------------------------

    def _names(self, names: Iterable[str]) -> list[str]:
        out = list(dict.fromkeys(names))
        if not out:
            raise LabError("name at least one member")
        for n in out:
            self.cluster.member(n)
        return out

    def kill(self, names: Iterable[str]) -> None:
        """SIGKILL each member (it stays down until ``restart``)."""
        chosen = self._names(names)
        for n in chosen:
            if self.cluster.process_state(n) == "killed":
                raise LabError(f"{n} is not running (restart it with `minietcd-lab restart {n}`)")
        for n in chosen:
            self.cluster.kill(n)

    def restart(self, names: Iterable[str]) -> None:
        """SIGKILL each member if it runs (or is paused), then start it on the same data dir."""
        chosen = self._names(names)
        for n in chosen:
            if self.cluster.process_state(n) != "killed":
                self.cluster.kill(n)
            self.cluster.start(n)

    def pause(self, names: Iterable[str]) -> None:
        """SIGSTOP each member: it holds its connections but answers nothing."""
        chosen = self._names(names)
        for n in chosen:
            st = self.cluster.process_state(n)
            if st != "running":
                raise LabError(f"cannot pause {n}: it is {st}")
        for n in chosen:
            self.cluster.signal(n, signal.SIGSTOP)

    def resume(self, names: Iterable[str]) -> None:
        """SIGCONT each paused member."""
        chosen = self._names(names)
        for n in chosen:
            st = self.cluster.process_state(n)
            if st != "paused":
                raise LabError(f"cannot resume {n}: it is {st}, not paused")
        for n in chosen:
            self.cluster.signal(n, signal.SIGCONT)

    # --- links ---------------------------------------------------------------------------

    def _require_links(self, what: str) -> None:
        if len(self.cluster.members) < 2:
            raise LabError(f"cannot {what}: a 1-member cluster has no peer links")
        if not self.cluster.state.toxiproxy_url:
            raise LinkFaultsUnsupported(
                f"cannot {what}: {' '.join(self.cluster.state.server)} members dial their peers directly; "
                "link faults need minietcd members (their peer links go through Toxiproxy)"
            )

    @property
    def has_links(self) -> bool:
        return len(self.cluster.members) > 1 and bool(self.cluster.state.toxiproxy_url)

    def partition(self, groups: Sequence[Sequence[str]]) -> list[list[str]]:
        """Make the network exactly ``groups`` (see the module docstring); returns the groups
        in force, including the group of members named in none."""
        self._require_links("partition")
        seen: dict[str, int] = {}
        full: list[list[str]] = []
        for i, group in enumerate(groups):
            if not group:
                raise LabError("a partition group cannot be empty")
            for n in group:
                self.cluster.member(n)
                if n in seen:
                    raise LabError(f"{n} is in more than one partition group")
                seen[n] = i
            full.append(list(group))
        rest = [n for n in self.cluster.names if n not in seen]
        if rest:
            for n in rest:
                seen[n] = len(full)
            full.append(rest)
        if len(full) < 2:
            raise LabError("a partition needs at least two groups (every member is in one group)")
        links = self.cluster.state.links
        self.cluster.links.set_enabled([lk for lk in links if seen[lk.src] == seen[lk.dst]], True)
        self.cluster.links.set_enabled([lk for lk in links if seen[lk.src] != seen[lk.dst]], False)
        return full

    def isolate(self, names: Iterable[str]) -> None:
        """Disable every link to and from each member (other link faults stay)."""
        self._require_links("isolate")
        chosen = set(self._names(names))
        if chosen == set(self.cluster.names):
            raise LabError("cannot isolate every member: name the members to cut off from the rest")
        cut = [lk for lk in self.cluster.state.links if lk.src in chosen or lk.dst in chosen]
        self.cluster.links.set_enabled(cut, False)

    def heal(self) -> None:
        """Enable every link again (ends partitions and isolation; toxics stay)."""
        if self.has_links:
            self.cluster.links.heal()

    def _link(self, link: str | tuple[str, str]) -> LinkState:
        self._require_links("add a link fault")
        src, dst = parse_link(link) if isinstance(link, str) else link
        return self.cluster.state.link(src, dst)

    def slow(self, link: str | tuple[str, str], latency_ms: int, jitter_ms: int = 0) -> None:
        if latency_ms < 0 or jitter_ms < 0:
            raise LabError("latency and jitter cannot be negative")
        if latency_ms == 0 and jitter_ms == 0:
            raise LabError("a slow link needs a latency (e.g. --latency 200ms)")
        self.cluster.links.add_toxic(
            self._link(link), "slow", "latency", {"latency": latency_ms, "jitter": jitter_ms}
        )

    def blackhole(self, link: str | tuple[str, str]) -> None:
        self.cluster.links.add_toxic(self._link(link), "blackhole", "timeout", {"timeout": 0})

    def flaky(self, link: str | tuple[str, str], probability: float) -> None:
        if not 0 < probability < 1:
            raise LabError(f"a flaky link fails a fraction of its connections: 0 < p < 1, not {probability}")
        self.cluster.links.add_toxic(
            self._link(link), "flaky", "timeout", {"timeout": 0}, toxicity=probability
        )

    def clear(self, link: str | tuple[str, str]) -> int:
        """Remove every toxic from one link; returns how many there were."""
        lk = self._link(link)
        status = self.cluster.links.statuses()[lk.key]
        for toxic in status.toxics:
            self.cluster.links.remove_toxic(lk, toxic.name)
        return len(status.toxics)

    def reset(self) -> None:
        """Heal, remove every toxic, and resume paused members."""
        if self.has_links:
            self.cluster.links.heal()
            self.cluster.links.clear_toxics()
        for m in self.cluster.members:
            if self.cluster.process_state(m.name) == "paused":
                self.cluster.signal(m.name, signal.SIGCONT)

    # --- what is in force ----------------------------------------------------------------

    def in_force(self) -> dict[str, list[str]]:
        """Per member, the faults in force on it and on the links it sends on."""
        out: dict[str, list[str]] = {n: [] for n in self.cluster.names}
        for name in self.cluster.names:
            st = self.cluster.process_state(name)
            if st != "running":
                out[name].append(st)
        if not self.has_links:
            return out
        statuses = self.cluster.links.statuses()
        for name in self.cluster.names:
            outgoing = [s for s in statuses.values() if s.link.src == name]
            incoming = [s for s in statuses.values() if s.link.dst == name]
            cut_out = [s.link.dst for s in outgoing if not s.enabled]
            cut_in = [s.link.src for s in incoming if not s.enabled]
            if outgoing and len(cut_out) == len(outgoing) and len(cut_in) == len(incoming):
                out[name].append("isolated")
            elif cut_out:
                out[name].append("cut ->" + ",".join(cut_out))
            for s in outgoing:
                for toxic in s.toxics:
                    out[name].append(f"{toxic.describe()} ->{s.link.dst}")
        return out
