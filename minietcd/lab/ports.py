"""Which ports a lab cluster opens: chosen at random, or from a range its user picked.

By default every port (members' client, peer and metrics ports, the link proxies, the
Toxiproxy API) is a random free one *outside* the kernel's ephemeral range (``free_ports``).
That suits one user; on a machine several people share, each picks a range of their own with
``--port-base`` / ``--port-range`` (``$MINIETCD_LAB_PORT_BASE`` / ``$MINIETCD_LAB_PORT_RANGE``)
and every port the lab opens then comes from that range (``PortPlan``), in this order:

    base + 0                the Toxiproxy API (when the lab starts the Toxiproxy itself)
    next 3 per member       n1 client, n1 peer, n1 metrics, n2 client, ...
    then one per link       n1->n2, n1->n3, ..., then the client proxies (if asked for)

Without ``--port-range`` the cluster takes exactly the ports it needs from ``base`` on, so its
ports are predictable (n1's client port is base + 1), and a port already in use is an error
naming it. With ``--port-range R`` the ports are taken in the same order from ``base`` ..
``base + R - 1``, skipping ports in use.

A port is "in use" when binding it on 127.0.0.1 with ``SO_REUSEADDR`` fails, which is exactly
when the member or proxy would fail to listen on it (both set ``SO_REUSEADDR``).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minietcd.errors import LabError, LabPortTakenError
from minietcd.lab.state import HOST, MemberState

PORT_BASE_ENV = "MINIETCD_LAB_PORT_BASE"  # read by the CLI (click), as --port-base
PORT_RANGE_ENV = "MINIETCD_LAB_PORT_RANGE"
MIN_PORT = 1024  # below: privileged ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports on 127.0.0.1 that were free a moment ago, chosen *outside* the
    kernel's ephemeral range: a port there could be taken by anyone's ``bind(0)`` or outgoing
    connection between now and the moment a member (or a proxy, re-enabled after a partition)
    listens on it. Out of that range only explicit binds compete."""
    lo_e, hi_e = _ephemeral_range()
    lo, hi = (10000, lo_e) if lo_e - 10000 >= 2000 else (hi_e + 1, 65536)
    rng = random.SystemRandom()
    socks: list[socket.socket] = []
    try:
        for _attempt in range(50 * n + 100):
            if len(socks) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((HOST, rng.randrange(lo, hi)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        if len(socks) < n:
            raise LabError(f"could not find {n} free ports in {lo}-{hi - 1}")
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def cluster_purposes(names: Sequence[str], client_proxies: bool = False, links: bool = True) -> list[str]:
    """What each port of a cluster of ``names`` is for, in the order ports are handed out
    (without the Toxiproxy API: the caller adds it when it starts one). ``links``: whether
    its peer links (and client proxies) go through Toxiproxy."""
    out = [f"{n} {what}" for n in names for what in ("client", "peer", "metrics")]
    if not links:
        return out
    out += [f"link {src}->{dst}" for src in names for dst in names if src != dst]
    if client_proxies:
        out += [f"client proxy of {n}" for n in names]
    return out


@dataclass(slots=True, frozen=True)
class PortPlan:
    """Ports from ``base`` on: exactly the ones needed (``span`` None), or any free ones among
    ``base`` .. ``base + span - 1``."""

    base: int
    span: int | None = None

    def __post_init__(self) -> None:
        if not MIN_PORT <= self.base <= 65535:
            raise LabError(f"--port-base {self.base}: choose a port between {MIN_PORT} and 65535")
        if self.span is not None and self.span < 1:
            raise LabError(f"--port-range {self.span}: give the number of ports the lab may use (at least 1)")
        if self.span is not None and self.base + self.span > 65536:
            raise LabError(f"--port-base {self.base} --port-range {self.span} goes past port 65535")

    def describe(self) -> str:
        if self.span is None:
            return f"--port-base {self.base}"
        return f"--port-base {self.base} --port-range {self.span} ({self.base}-{self.base + self.span - 1})"

    def after(self, n: int) -> PortPlan:
        """The plan for what comes after the first ``n`` ports (another user of the range, e.g.
        the clusters of a fault table after its shared Toxiproxy)."""
        if self.span is not None and self.span <= n:
            raise LabError(f"{self.describe()} has no room left after its first {n} port(s)")
        return PortPlan(self.base + n, None if self.span is None else self.span - n)

    def take(self, purposes: Sequence[str]) -> list[int]:
        """One port per purpose (``"n1 client"``...), in order; a one-line LabError naming the
        port and what it was for when it is in use (without a span), or when the span has too
        few free ports."""
        need = len(purposes)
        if self.span is None:
            if self.base + need > 65536:
                raise LabError(f"--port-base {self.base}: {need} ports from there go past port 65535")
            for i, purpose in enumerate(purposes):
                if port_in_use(self.base + i):
                    raise LabPortTakenError(
                        f"port {self.base + i} ({purpose}) is already in use: choose another --port-base "
                        f"than {self.base}, or give a --port-range to skip ports in use"
                    )
            return list(range(self.base, self.base + need))
        if self.span < need:
            raise LabError(
                f"{self.describe()} is too small: this cluster needs {need} ports "
                f"({_summary(purposes)})"
            )
        ports: list[int] = []
        for port in range(self.base, self.base + self.span):
            if len(ports) == need:
                break
            if not port_in_use(port):
                ports.append(port)
        if len(ports) < need:
            raise LabError(
                f"only {len(ports)} of the {need} ports this cluster needs are free in {self.describe()}: "
                "choose another --port-base or a wider --port-range"
            )
        return ports


def _summary(purposes: Sequence[str]) -> str:
    members = sum(p.endswith(" client") for p in purposes)
    links = sum(p.startswith("link ") for p in purposes)
    parts = [f"3 for each of {members} members"] if members else []
    if links:
        parts.append(f"{links} links")
    if "toxiproxy API" in purposes:
        parts.insert(0, "1 for the Toxiproxy API")
    rest = len(purposes) - 3 * members - links - ("toxiproxy API" in purposes)
    if rest:
        parts.append(f"{rest} client proxies")
    return ", ".join(parts)


def port_taken_in_logs(members: Sequence[MemberState]) -> str | None:
    """One line naming the port a member could not listen on, if its log says so (someone took
    it between choosing and listening), else None."""
    for m in members:
        try:
            text = Path(m.log_path).read_text(errors="replace")[-8000:]
        except OSError:
            continue
        if "address already in use" not in text.lower() and "failed to bind" not in text.lower():
            continue
        ports = {"client": m.client_port, "peer": m.peer_port, "metrics": m.metrics_port}
        hit = [f"{p} ({m.name} {what})" for what, p in ports.items() if f":{p}" in text]
        where = f"port {hit[0]}" if hit else f"a port of {m.name}"
        return f"{where} is already in use by another process (log: {m.log_path}): choose another --port-base"
    return None
