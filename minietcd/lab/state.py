"""The lab's state file: what ``minietcd-lab up`` started, so later invocations find it.

``<lab dir>/lab.json`` holds the members (ports, member IDs, data dirs, logs, processes), the
Toxiproxy in use (and its process if the lab started it) and the proxy of every link. It is
written atomically (temporary file + rename). Which faults are in force is not stored here: it
is read back from the processes (``/proc``) and from Toxiproxy, so it cannot go stale.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minietcd.errors import LabError
from minietcd.lab.processes import ProcessRef

STATE_FILE = "lab.json"
FORMAT_VERSION = 1
HOST = "127.0.0.1"


@dataclass(slots=True)
class MemberState:
    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    member_id: int
    data_dir: str
    log_path: str
    client_proxy_port: int | None = None  # clients reach the member through this port, if set
    process: ProcessRef | None = None
    # "new" for a member of the bootstrap --initial-cluster; "existing" once it has been
    # replaced (removed, wiped, added back with MemberAdd): it must then join, never bootstrap.
    initial_cluster_state: str = "new"
    # Where peers reach it when that is not 127.0.0.1:peer_port (a compose member: http://nI:2380).
    advertised_peer_url: str | None = None

    @property
    def peer_url(self) -> str:
        return self.advertised_peer_url or f"http://{HOST}:{self.peer_port}"

    @property
    def listen_client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def client_url(self) -> str:
        """The URL clients are given (the client proxy, if there is one)."""
        return f"http://{HOST}:{self.client_proxy_port or self.client_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "client_port": self.client_port,
            "peer_port": self.peer_port,
            "metrics_port": self.metrics_port,
            "member_id": f"{self.member_id:x}",
            "data_dir": self.data_dir,
            "log_path": self.log_path,
            "client_proxy_port": self.client_proxy_port,
            "process": None if self.process is None else self.process.to_json(),
            "initial_cluster_state": self.initial_cluster_state,
            "advertised_peer_url": self.advertised_peer_url,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> MemberState:
        process = data.get("process")
        return MemberState(
            name=str(data["name"]),
            client_port=int(data["client_port"]),
            peer_port=int(data["peer_port"]),
            metrics_port=int(data["metrics_port"]),
            member_id=int(str(data["member_id"]), 16),
            data_dir=str(data["data_dir"]),
            log_path=str(data["log_path"]),
            client_proxy_port=data.get("client_proxy_port"),
            process=None if process is None else ProcessRef.from_json(process),
            initial_cluster_state=str(data.get("initial_cluster_state", "new")),
            advertised_peer_url=data.get("advertised_peer_url"),
        )


@dataclass(slots=True)
class LinkState:
    """The Toxiproxy proxy carrying one directed link (``src`` dials ``dst`` through it)."""

    src: str
    dst: str
    proxy: str
    port: int

    @property
    def key(self) -> str:
        return f"{self.src}->{self.dst}"

    def to_json(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "proxy": self.proxy, "port": self.port}

    @staticmethod
    def from_json(data: dict[str, Any]) -> LinkState:
        return LinkState(str(data["src"]), str(data["dst"]), str(data["proxy"]), int(data["port"]))


@dataclass(slots=True)
class LabState:
    lab_dir: str
    token: str
    heartbeat_ms: int
    election_ms: int
    pre_vote: bool
    toxiproxy_url: str
    proxy_prefix: str
    toxiproxy_process: ProcessRef | None = None  # set only if the lab started it
    extra_flags: list[str] = field(default_factory=list)
    members: list[MemberState] = field(default_factory=list)
    links: list[LinkState] = field(default_factory=list)
    client_proxies: dict[str, str] = field(default_factory=dict)  # member name -> proxy name
    # The server's command when it is not this minietcd (e.g. ["/usr/bin/etcd"]): such a
    # cluster has no links and an empty toxiproxy_url (minietcd.lab.cluster.routable).
    server: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.lab_dir) / STATE_FILE

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "lab_dir": self.lab_dir,
            "token": self.token,
            "heartbeat_ms": self.heartbeat_ms,
            "election_ms": self.election_ms,
            "pre_vote": self.pre_vote,
            "toxiproxy_url": self.toxiproxy_url,
            "proxy_prefix": self.proxy_prefix,
            "toxiproxy_process": None if self.toxiproxy_process is None else self.toxiproxy_process.to_json(),
            "extra_flags": list(self.extra_flags),
            "members": [m.to_json() for m in self.members],
            "links": [link.to_json() for link in self.links],
            "client_proxies": dict(self.client_proxies),
            "server": list(self.server),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> LabState:
        if data.get("format") != FORMAT_VERSION:
            raise LabError(f"unknown lab state format {data.get('format')!r}")
        proc = data.get("toxiproxy_process")
        return LabState(
            lab_dir=str(data["lab_dir"]),
            token=str(data["token"]),
            heartbeat_ms=int(data["heartbeat_ms"]),
            election_ms=int(data["election_ms"]),
            pre_vote=bool(data["pre_vote"]),
            toxiproxy_url=str(data["toxiproxy_url"]),
            proxy_prefix=str(data["proxy_prefix"]),
            toxiproxy_process=None if proc is None else ProcessRef.from_json(proc),
            extra_flags=[str(f) for f in data.get("extra_flags", [])],
            members=[MemberState.from_json(m) for m in data["members"]],
            links=[LinkState.from_json(link) for link in data["links"]],
            client_proxies={str(k): str(v) for k, v in data.get("client_proxies", {}).items()},
            server=[str(a) for a in data.get("server", [])],
        )

    def save(self) -> None:
        path = self.path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    @staticmethod
    def load(lab_dir: Path) -> LabState:
        path = Path(lab_dir) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(f"no cluster in {lab_dir} (start one with `minietcd-lab up`)") from None
        except ValueError as e:
            raise LabError(f"{path} is not a lab state file: {e}") from e
        return LabState.from_json(data)

    @staticmethod
    def exists(lab_dir: Path) -> bool:
        return (Path(lab_dir) / STATE_FILE).exists()

    # --- lookups -------------------------------------------------------------------------

    def member(self, name: str) -> MemberState:
        for m in self.members:
            if m.name == name:
                return m
        names = ", ".join(m.name for m in self.members)
        raise LabError(f"unknown member {name!r}: this cluster has {names}")

    def member_by_id(self, member_id: int) -> MemberState | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    def link(self, src: str, dst: str) -> LinkState:
        self.member(src)
        self.member(dst)
        if src == dst:
            raise LabError(f"{src}->{dst}: a member has no link to itself")
        for link in self.links:
            if link.src == src and link.dst == dst:
                return link
        raise LabError(f"no proxy for link {src}->{dst} in this lab")
