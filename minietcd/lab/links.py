"""Every directed peer link i->j through a Toxiproxy proxy of its own, driven by toxiproxy-python.

How a link is routed without touching member IDs: etcd derives each member's ID from the peer
URLs in ``--initial-cluster`` (and the token), so every member gets the *same*
``--initial-cluster`` with the members' real peer URLs, and the IDs agree cluster-wide. What
differs per member is where it *dials*: member i is started with ``MINIETCD_LAB_PEER_ROUTES``
(read by ``minietcd.server.transport``, lab-only) mapping the real peer URL of every j to the
listen address of proxy(i->j), whose upstream is j's real peer port. Since a member only ever
sends on connections it dialled itself (and only reads replies on them), proxy(i->j) carries
exactly the traffic i sends to j:

* ``stream="upstream"`` toxics on proxy(i->j) act on what i sends to j;
* disabling proxy(i->j) (Toxiproxy closes its listener and every connection) cuts i->j only;
  a partition disables the proxies of every link crossing the groups, both directions.

Proxies are named ``<prefix>-n1-n2`` (``prefix`` is unique per lab, so labs can share one
Toxiproxy); client proxies (optional) ``<prefix>-client-n1``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minietcd.errors import LabError
from minietcd.lab.state import HOST, LabState, LinkState, MemberState
from minietcd.lab.toxiproxy import CLIENT_LOCK, configure_client

ROUTES_ENV = "MINIETCD_LAB_PEER_ROUTES"  # = minietcd.server.peer_channels.LAB_PEER_ROUTES_ENV


@dataclass(slots=True)
class ToxicInfo:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]

    def describe(self) -> str:
        a = self.attributes
        if self.type == "latency":
            text = f"slow {a.get('latency', 0)}ms"
            if a.get("jitter"):
                text += f"±{a['jitter']}ms"
        elif self.type == "timeout":
            text = "blackhole"
        elif self.type == "bandwidth":
            text = f"bandwidth {a.get('rate', 0)}KB/s"
        else:
            text = self.type
        if self.toxicity < 1:
            text += f" ({self.toxicity:.0%} of connections)"
        return text


@dataclass(slots=True)
class LinkStatus:
    link: LinkState
    enabled: bool
    toxics: list[ToxicInfo] = field(default_factory=list)


def _proxy_cls() -> Any:
    from toxiproxy.proxy import Proxy

    return Proxy


def _api() -> Any:
    from toxiproxy.api import APIConsumer

    return APIConsumer


@contextlib.contextmanager
def _answering(url: str) -> Iterator[None]:
    """Talk to the Toxiproxy at ``url``; it not answering -> LabError (toxiproxy-python lets
    requests' errors through). toxiproxy-python keeps the server's address on a class, for the
    whole process: point it at ``url`` each time, or a process holding two labs (a test suite)
    would send one lab's calls to the other's Toxiproxy."""
    import requests

    with CLIENT_LOCK:  # until these calls are done, no other thread re-points the client
        configure_client(url)
        try:
            yield
        except requests.RequestException as e:
            raise LabError(f"Toxiproxy at {url} is not answering ({type(e).__name__})") from None


def _port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


class Links:
    """The proxies of one lab (links and client proxies) on its Toxiproxy."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        if state.toxiproxy_url:  # empty: a cluster without links (a server that is not minietcd)
            configure_client(state.toxiproxy_url)

    # --- creation ------------------------------------------------------------------------

    def _create(self, name: str, upstream_port: int, listen_port: int) -> int:
        body = {"name": name, "upstream": f"{HOST}:{upstream_port}", "listen": f"{HOST}:{listen_port}"}
        resp = _api().post("/proxies", json={**body, "enabled": True})
        if resp.status_code == 409:
            raise LabError(f"Toxiproxy at {self.state.toxiproxy_url} already has a proxy {name!r}")
        if resp.status_code != 201:  # e.g. its listen port is taken: "address already in use"
            try:
                why = str(resp.json().get("error", resp.text))
            except ValueError:
                why = resp.text.strip()
            raise LabError(f"Toxiproxy could not create proxy {name} on {HOST}:{listen_port}: {why}")
        return _port_of(str(resp.json()["listen"]))

    def create_all(self, ports: Sequence[int], client_proxies: bool = False) -> None:
        """Create proxy(i->j) for every ordered pair of members (and client proxies if asked),
        listening on ``ports`` in turn (chosen by the caller, never port 0: a proxy disabled by
        a partition must find its port free again when it is re-enabled)."""
        with _answering(self.state.toxiproxy_url):
            members = self.state.members
            free = iter(ports)
            for src in members:
                for dst in members:
                    if src is dst:
                        continue
                    name = f"{self.state.proxy_prefix}-{src.name}-{dst.name}"
                    port = self._create(name, dst.peer_port, next(free))
                    self.state.links.append(LinkState(src.name, dst.name, name, port))
            if client_proxies:
                for m in members:
                    name = f"{self.state.proxy_prefix}-client-{m.name}"
                    m.client_proxy_port = self._create(name, m.client_port, next(free))
                    self.state.client_proxies[m.name] = name

    def routes_for(self, member: MemberState) -> dict[str, str]:
        """``{real peer URL of j: URL of proxy(member->j)}`` for every other member j."""
        routes: dict[str, str] = {}
        for link in self.state.links:
            if link.src == member.name:
                routes[self.state.member(link.dst).peer_url] = f"http://{HOST}:{link.port}"
        return routes

    def routes_env(self, member: MemberState) -> dict[str, str]:
        routes = self.routes_for(member)
        return {ROUTES_ENV: json.dumps(routes, sort_keys=True)} if routes else {}

    def destroy_all(self) -> None:
        """Delete every proxy of this lab (those already gone are skipped)."""
        with _answering(self.state.toxiproxy_url):
            from toxiproxy.exceptions import NotFound

            names = [link.proxy for link in self.state.links] + list(self.state.client_proxies.values())
            for name in names:
                with contextlib.suppress(NotFound):
                    _api().delete(f"/proxies/{name}")

    # --- faults -------------------------------------------------------------------------

    def _proxy(self, link: LinkState, enabled: bool = True) -> Any:
        return _proxy_cls()(name=link.proxy, upstream="", enabled=enabled, listen=f"{HOST}:{link.port}")

    def set_enabled(self, links: Iterable[LinkState], enabled: bool) -> None:
        with _answering(self.state.toxiproxy_url):
            for link in links:
                proxy = self._proxy(link)
                if enabled:
                    proxy.enable()
                else:
                    proxy.disable()

    def add_toxic(
        self,
        link: LinkState,
        name: str,
        toxic_type: str,
        attributes: Mapping[str, Any],
        toxicity: float = 1.0,
    ) -> None:
        """Add toxic ``name`` on what ``link.src`` sends to ``link.dst`` (replacing one of that name)."""
        proxy = self._proxy(link)
        self.remove_toxic(link, name)
        with _answering(self.state.toxiproxy_url):
            proxy.add_toxic(
                name=name, type=toxic_type, stream="upstream", toxicity=toxicity, attributes=dict(attributes)
            )

    def remove_toxic(self, link: LinkState, name: str) -> bool:
        with _answering(self.state.toxiproxy_url):
            from toxiproxy.exceptions import NotFound

            try:
                self._proxy(link).destroy_toxic(name)
            except NotFound:
                return False
            return True

    def statuses(self) -> dict[str, LinkStatus]:
        """The live state of every link, keyed ``"n1->n2"``, read from Toxiproxy in one call."""
        with _answering(self.state.toxiproxy_url):
            proxies: dict[str, Any] = _api().get("/proxies").json()
            out: dict[str, LinkStatus] = {}
            for link in self.state.links:
                data = proxies.get(link.proxy)
                if data is None:
                    raise LabError(
                        f"proxy {link.proxy} for {link.key} is gone from {self.state.toxiproxy_url}"
                    )
                toxics = [
                    ToxicInfo(
                        name=str(t["name"]),
                        type=str(t["type"]),
                        stream=str(t.get("stream", "downstream")),
                        toxicity=float(t.get("toxicity", 1.0)),
                        attributes=dict(t.get("attributes") or {}),
                    )
                    for t in data.get("toxics") or []
                ]
                out[link.key] = LinkStatus(link, bool(data["enabled"]), toxics)
            return out

    def heal(self) -> None:
        """Re-enable every link (toxics stay)."""
        statuses = self.statuses()
        self.set_enabled([s.link for s in statuses.values() if not s.enabled], True)

    def clear_toxics(self) -> None:
        for status in self.statuses().values():
            for toxic in status.toxics:
                self.remove_toxic(status.link, toxic.name)
