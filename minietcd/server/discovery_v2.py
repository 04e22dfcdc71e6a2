"""Bootstrapping a new cluster from a discovery URL: etcd 3.4's v2 discovery (``--discovery``).

A discovery URL names a token directory on a discovery service that speaks etcd's v2 keys API
over HTTP: ``https://discovery.etcd.io/<token>`` (the public service, or Debian's
``etcd-discovery`` package in front of an etcd with ``--enable-v2``), ``minietcd-lab discovery
serve``'s token URLs, or an etcd v2 directory such as ``http://etcd:2379/v2/keys/discovery/x``.
The URL's path is the token: every request goes to the URL's scheme and host with a key under
that path. Each member, as etcd's client does it (etcdserver/api/v2discovery/discovery.go):

1. ``GET <token>/_config/size`` (the expected cluster size, put when the token was made) and
   ``GET <token>`` (the members registered so far, ordered by ``createdIndex``). If ``size``
   members registered before this one: "discovery: cluster is full", without registering;
2. ``PUT <token>/<member ID in hex>?prevExist=false`` with ``value=<name>=<peer URL>,...``
   (its ``--initial-cluster`` entry). The member ID is etcd's, derived from the advertised
   peer URLs and the *whole discovery URL* as the cluster token, so it is the ID the member
   gets. If the key exists: "discovery: found duplicate id" (registered before, and no data
   dir kept: use a new token). Then waits (``?wait=true&waitIndex=``) until its own key shows;
3. reads the members again and, while fewer than ``size`` are known, long-polls
   ``GET <token>?wait=true&recursive=true&waitIndex=<index+1>``: each event is the next
   member. Logs etcd's lines ("found self ...", "found 1 peer(s), waiting for 2 more",
   "found 3 needed peer(s)");
4. joins the first ``size`` values into ``--initial-cluster`` (a bad URL: "discovery: invalid
   URL"; two members with one name: "discovery: found duplicate name") and bootstraps with the
   discovery URL as ``--initial-cluster-token``.

An unreachable service, a refused connection or a 5xx answer is retried after 2 s, 4 s, ...
256 s (etcd's backoff), forever, logging "<step>: error connecting to <url>, retrying in <d>".
Unlike etcd, a request that times out (5 s) is retried the same way instead of ending
discovery with "context deadline exceeded", and watch events that are not a new member (a
change under ``_config``, a deletion, a key seen before) are skipped rather than counted.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from minietcd.client.v2keys import V2Error, V2Node, V2Response, parse_error, parse_response
from minietcd.errors import ConfigError
from minietcd.golang import quote as go_quote
from minietcd.server import ids
from minietcd.server.discovery import DiscoveryError
from minietcd.server.logsetup import NOTICE
from minietcd.server.urls import parse_urls_map

__all__ = [
    "ERR_BAD_DISCOVERY_ENDPOINT",
    "ERR_BAD_SIZE_KEY",
    "ERR_DUPLICATE_ID",
    "ERR_DUPLICATE_NAME",
    "ERR_FULL_CLUSTER",
    "ERR_INVALID_URL",
    "V2DiscoveryError",
    "go_duration",
    "join_cluster",
    "nodes_to_cluster",
    "proxy_url",
    "split_discovery_url",
]

log = logging.getLogger("minietcd.server.discovery")

# etcd's error texts (v2discovery.Err*).
ERR_INVALID_URL: Final = "discovery: invalid URL"
ERR_BAD_SIZE_KEY: Final = "discovery: size key is bad"
ERR_DUPLICATE_ID: Final = "discovery: found duplicate id"
ERR_DUPLICATE_NAME: Final = "discovery: found duplicate name"
ERR_FULL_CLUSTER: Final = "discovery: cluster is full"
ERR_BAD_DISCOVERY_ENDPOINT: Final = "discovery: bad discovery endpoint"
ERR_INVALID_JSON: Final = (
    "client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint"
)
#: etcd's client.DefaultRequestTimeout (every request but the long-polling waits).
REQUEST_TIMEOUT: Final = 5.0
#: pkg/transport.NewTransport's dial timeout, as etcd's discovery client uses it.
DIAL_TIMEOUT: Final = 30.0
#: Backoff doubles from 2 s up to 2**8 s (maxExpoentialRetries), then stays there.
MAX_EXPONENTIAL_RETRIES: Final = 8


class V2DiscoveryError(DiscoveryError):
    """Discovery failed for good: ``failed to join discovery cluster (<reason>)``.

    ``etcdmain_lines`` are the (level, text) lines etcdmain logs for it before exiting 1.
    """

    def __init__(self, reason: str, etcdmain_lines: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(reason)
        self.etcdmain_lines = list(etcdmain_lines)


class _ClusterError(Exception):
    """No endpoint answered usefully (etcd's client.ClusterError): retried with backoff."""


def go_duration(seconds: int) -> str:
    """Go's ``time.Duration.String`` for whole seconds: ``2s``, ``1m4s``, ``4m16s``."""
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s" if m else f"{s}s"


def split_discovery_url(durl: str) -> tuple[str, str]:
    """``(endpoint, token path)``: the URL without its path, and the path (etcd's newDiscovery:
    ``token := u.Path; u.Path = ""``)."""
    u = urllib.parse.urlsplit(durl)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ConfigError(f"--discovery: {durl!r} is not an http(s) URL")
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "", "", "")), u.path


def proxy_url(dproxy: str) -> str | None:
    """``--discovery-proxy`` as a proxy URL (etcd's newProxyFunc: ``http://`` is added to a bare
    ``host:port``); None without one."""
    if not dproxy:
        return None
    u = urllib.parse.urlsplit(dproxy)
    if not u.scheme.startswith("http") or not u.netloc:
        u = urllib.parse.urlsplit("http://" + dproxy)
    if not u.netloc:
        raise ConfigError(f"invalid proxy address {dproxy!r}")
    return urllib.parse.urlunsplit(u)


def nodes_to_cluster(nodes: Sequence[V2Node], size: int) -> str:
    """The ``--initial-cluster`` of the discovered members (etcd's nodesToCluster)."""
    text = ",".join(n.value or "" for n in nodes)
    try:
        urls_map = parse_urls_map(text)
    except ConfigError:
        raise V2DiscoveryError(ERR_INVALID_URL) from None
    if len(urls_map) != size:
        raise V2DiscoveryError(ERR_DUPLICATE_NAME)
    return text


def _base(key: str) -> str:
    return posixpath.basename(key.rstrip("/"))


@dataclass(slots=True)
class _Discovery:
    """One member's conversation with the discovery service (etcd's ``discovery`` struct)."""

    session: aiohttp.ClientSession
    endpoint: str  # scheme://host[:port], shown in the retry lines
    cluster: str  # the token path, e.g. "/1e99...38a5"
    member_id: int
    proxy: str | None = None
    retries: int = 0
    seen: set[str] = field(default_factory=set)

    @property
    def self_key(self) -> str:
        return posixpath.join("/", self.cluster, ids.format_id(self.member_id))

    # --- HTTP ----------------------------------------------------------------------------

    async def _do(self, method: str, key: str, params: dict[str, str], *, wait: bool = False,
                  form: dict[str, str] | None = None) -> V2Response:  # fmt: skip
        """One v2 keys request (etcd's client/keys.go actions) to ``endpoint + key``."""
        path = posixpath.normpath("/" + key.lstrip("/")) if key.strip("/") else "/"
        url = self.endpoint + urllib.parse.quote(path)
        timeout = aiohttp.ClientTimeout(total=None if wait else REQUEST_TIMEOUT, connect=DIAL_TIMEOUT)
        while True:
            try:
                async with self.session.request(
                    method, url, params=params, data=form, proxy=self.proxy, timeout=timeout
                ) as resp:
                    body = await resp.read()
                    status, index = resp.status, resp.headers.get("X-Etcd-Index")
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise _ClusterError(f"error #0: {type(e).__name__}: {e}") from None
            if status // 100 == 5:
                reason = "has no leader" if status in (500, 503) else f"returns server error [{status}]"
                raise _ClusterError(f"error #0: client: etcd member {self.endpoint} {reason}")
            if status in (200, 201):
                if not body:
                    continue  # etcd's client retries an empty body (ErrEmptyBody)
                return parse_response(body, index)  # ValueError: invalid json
            raise parse_error(body)  # a V2Error, or ValueError: invalid json

    async def _get(self, key: str) -> V2Response:
        return await self._do("GET", key, {"quorum": "false", "recursive": "false", "sorted": "false"})

    async def _wait(self, key: str, wait_index: int, recursive: bool) -> V2Response:
        params = {"wait": "true", "waitIndex": str(wait_index), "recursive": str(recursive).lower()}
        return await self._do("GET", key, params, wait=True)

    async def _backoff(self, step: str) -> None:
        self.retries += 1
        delay = 2 ** min(self.retries, MAX_EXPONENTIAL_RETRIES)
        log.info(
            "discovery: %s: error connecting to %s, retrying in %s", step, self.endpoint, go_duration(delay)
        )
        await asyncio.sleep(delay)  # backoff, not synchronisation

    # --- the protocol ---------------------------------------------------------------------

    async def check_cluster(self) -> tuple[list[V2Node], int, int]:
        """(members by createdIndex, size, index of the listing); etcd's checkCluster, with its
        retries. Raises V2DiscoveryError(cluster is full) if ``size`` registered before us."""
        config_key = posixpath.join("/", self.cluster, "_config")
        while True:
            try:
                resp = await self._get(posixpath.join(config_key, "size"))
            except _ClusterError as e:
                log.error("discovery: %s", e)
                await self._backoff("cluster status check")
                continue
            except ValueError:
                raise V2DiscoveryError(ERR_BAD_DISCOVERY_ENDPOINT) from None
            except V2Error as e:
                # etcd 3.4 means to answer ErrSizeNotFound here, but its type check never
                # matches, so the v2 error itself is what users see: keep etcd's text.
                raise V2DiscoveryError(str(e)) from None
            value = resp.node.value or ""
            if not value.isascii() or not value.isdigit() or int(value) == 0:
                raise V2DiscoveryError(ERR_BAD_SIZE_KEY)  # strconv.ParseUint, and 0 makes no cluster
            size = int(value)
            try:
                listing = await self._get(self.cluster)
            except _ClusterError as e:
                log.error("discovery: %s", e)
                await self._backoff("cluster status check")
                continue
            except ValueError:
                raise V2DiscoveryError(ERR_INVALID_JSON) from None
            except V2Error as e:
                raise V2DiscoveryError(str(e)) from None
            nodes = [n for n in listing.node.nodes or () if _base(n.key) != "_config"]
            nodes.sort(key=lambda n: n.created_index)
            for i, n in enumerate(nodes):
                if _base(n.key) == _base(self.self_key):
                    break
                if i >= size - 1:
                    raise V2DiscoveryError(ERR_FULL_CLUSTER)
            return nodes, size, listing.index

    async def create_self(self, contents: str) -> None:
        try:
            resp = await self._do("PUT", self.self_key, {"prevExist": "false"}, form={"value": contents})
            # Make sure our key shows on the service before going on (etcd: "ensure self
            # appears on the server we connected to").
            await self._wait(self.self_key, resp.node.created_index, recursive=False)
        except V2Error as e:
            raise V2DiscoveryError(ERR_DUPLICATE_ID if e.code == 105 else str(e)) from None
        except _ClusterError as e:
            raise V2DiscoveryError(f"client: etcd cluster is unavailable or misconfigured; {e}") from None
        except ValueError:
            raise V2DiscoveryError(ERR_INVALID_JSON) from None

    def _found(self, node: V2Node) -> None:
        self.seen.add(_base(node.key))
        if _base(node.key) == _base(self.self_key):
            log.log(NOTICE, "discovery: found self %s in the cluster", _base(node.key))
        else:
            log.log(NOTICE, "discovery: found peer %s in the cluster", _base(node.key))

    async def wait_nodes(self, nodes: list[V2Node], size: int, index: int) -> list[V2Node]:
        while True:
            try:
                return await self._wait_nodes_once(nodes, size, index)
            except _ClusterError as e:
                log.error("discovery: %s", e)
                await self._backoff("waiting for other nodes")
                nodes, size, index = await self.check_cluster()

    async def _wait_nodes_once(self, nodes: list[V2Node], size: int, index: int) -> list[V2Node]:
        found = list(nodes[:size])
        self.seen.clear()
        for n in found:
            self._found(n)
        wait_index = index + 1
        while len(found) < size:
            log.log(NOTICE, "discovery: found %d peer(s), waiting for %d more", len(found), size - len(found))
            while True:
                try:
                    resp = await self._wait(self.cluster, wait_index, recursive=True)
                except ValueError:
                    raise V2DiscoveryError(ERR_INVALID_JSON) from None
                except V2Error as e:
                    raise V2DiscoveryError(str(e)) from None
                wait_index = resp.node.modified_index + 1
                name = _base(resp.node.key)
                parent = posixpath.dirname(resp.node.key.rstrip("/"))
                if resp.action in ("create", "set") and _base(parent) == _base(self.cluster) \
                        and name not in self.seen and not name.startswith("_"):  # fmt: skip
                    break
            self._found(resp.node)
            found.append(resp.node)
        log.log(NOTICE, "discovery: found %d needed peer(s)", len(found))
        return found

    async def join_cluster(self, config: str) -> str:
        await self.check_cluster()  # fast path: a full cluster fails before registering
        await self.create_self(config)
        nodes, size, index = await self.check_cluster()
        return nodes_to_cluster(await self.wait_nodes(nodes, size, index), size)


def _etcdmain_lines(reason: str, name: str, durl: str, data_dir: str) -> list[tuple[int, str]]:
    """What etcdmain logs for a failed discovery (etcdmain/etcd.go startEtcdOrProxyV2)."""
    if reason == ERR_DUPLICATE_ID:
        return [
            (logging.ERROR, f"member {go_quote(name)} has previously registered with discovery service token ({durl})."),  # noqa: E501
            (logging.ERROR, f"But etcd could not find valid cluster configuration in the given data dir ({data_dir})."),  # noqa: E501
            (logging.INFO, "Please check the given data dir path if the previous bootstrap succeeded"),
            (logging.INFO, "or use a new discovery token if the previous bootstrap failed."),
        ]
    if reason == ERR_DUPLICATE_NAME:
        return [
            (logging.ERROR, f"member with duplicated name has registered with discovery service token({durl})."),  # noqa: E501
            (logging.ERROR, "please check (cURL) the discovery token for more information."),
            (logging.ERROR, "please do not reuse the discovery token and generate a new one to bootstrap the cluster."),  # noqa: E501
        ]
    return [
        (logging.ERROR, f"failed to join discovery cluster ({reason})"),
        (logging.INFO, f"discovery token {durl} was used, but failed to bootstrap the cluster."),
        (logging.INFO, "please generate a new discovery token and try to bootstrap again."),
    ]


async def join_cluster(
    durl: str, dproxy: str, member_id: int, config: str, *, name: str = "", data_dir: str = ""
) -> str:
    """Register this member (ID ``member_id``, ``--initial-cluster`` entry ``config``) under
    the discovery URL ``durl`` and wait for the others; returns the new cluster's
    ``--initial-cluster``. Raises :class:`V2DiscoveryError` when discovery fails for good
    (``name`` and ``data_dir`` go into etcd's explanation lines). Cancel it to stop waiting."""
    endpoint, cluster = split_discovery_url(durl)
    proxy = proxy_url(dproxy)
    if proxy is not None:
        log.info("discovery: using proxy %r", proxy)
    async with aiohttp.ClientSession(trust_env=False) as session:
        d = _Discovery(session, endpoint, cluster, member_id, proxy)
        try:
            return await d.join_cluster(config)
        except V2DiscoveryError as e:
            raise V2DiscoveryError(e.reason, _etcdmain_lines(e.reason, name, durl, data_dir)) from None
