"""The `minietcd` process: etcd's flags in, a serving member out.

Start-up order (each step logs the line etcd logs, so scripts waiting for etcd's milestones work):
parse flags -> open or create the data dir (restart / new cluster / join) -> restore the state
machine from the newest snapshot -> start the Raft node and the peer transport -> serve the v3
API -> publish this member's name and client URLs through the log -> "ready to serve client
requests". SIGTERM or SIGINT stops it cleanly; SIGKILL loses nothing acknowledged (every
acknowledged write was fsynced by a majority before it was acknowledged).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

import grpc

from minietcd import ETCD_API_VERSION, __version__
from minietcd.api.raftpb import raft_pb2
from minietcd.errors import ConfigError, MemberFailedError
from minietcd.lease.lessor import min_lease_ttl
from minietcd.mvcc.watch import WatchHub
from minietcd.raft.config import Config as RaftConfig
from minietcd.raft.rawnode import RawNode
from minietcd.server.api import Api, ApiOptions
from minietcd.server.apply import StateMachine
from minietcd.server.auth.tokens import SimpleTokens, parse_auth_token
from minietcd.server.bootstrap import Start, bootstrap_new, restart, start_networked
from minietcd.server.client_http import ClientHttp
from minietcd.server.client_listeners import ClientListeners, bind_client_listeners, close_unstarted
from minietcd.server.cluster_version import major_minor
from minietcd.server.config import USAGE_LINE, Config, UsageError, help_text, parse_config, version_text
from minietcd.server.corrupt import check_initial_hash_kv, request_timeout
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.failstop import error_text
from minietcd.server.firststart import FirstStart, check_data_dir, discard_blank_wal
from minietcd.server.h2grpc import enabled as h2grpc_enabled
from minietcd.server.listeners import bind_sockets, close_grpc
from minietcd.server.logsetup import setup_logging
from minietcd.server.memory import trim_heap
from minietcd.server.raft_node import RaftNode
from minietcd.server.recovery import recover
from minietcd.server.snapshot_files import snapshot_sink
from minietcd.server.tls import ChannelOpener, TLSInfo, client_tls_info, peer_tls_info
from minietcd.server.transport import Transport, bind_peer_server
from minietcd.server.v3rpc.services import client_services
from minietcd.storage.raft_storage import DiskStorage

if TYPE_CHECKING:
    from minietcd.server.h2grpc.server import H2GrpcServer
    from minietcd.server.httpserver import HttpServer

log = logging.getLogger("minietcd.server")
GRPC_OVERHEAD = 512 * 1024  # etcd lets gRPC frames exceed --max-request-bytes by this much


def _host_port(url: object) -> str:
    u = str(url)
    return u.split("://", 1)[1].rstrip("/")


def _no_tls_error(url: object) -> ConfigError:
    """etcd's error for an https listener without a cert and key (transport.newTLSListener)."""
    return ConfigError(f"cannot listen on TLS for {_host_port(url)}: KeyFile and CertFile are not presented")


def _peer_tls(cfg: Config) -> tuple[TLSInfo, grpc.ServerCredentials | None]:
    """Peer TLS (auto TLS generates it), checked as etcd's configurePeerListeners does."""
    info = peer_tls_info(cfg)
    if not info.empty():
        log.info("embed: peerTLS: %s", info)
    for u in cfg.listen_peer_urls:
        if u.is_tls and info.empty():
            raise _no_tls_error(u)
        if not u.is_tls and not info.empty():
            log.warning(
                "embed: The scheme of peer url %s is HTTP while peer key/cert files are presented. "
                "Ignored peer key/cert files.",
                u,
            )
        if not u.is_tls and info.client_cert_auth:
            log.warning(
                "embed: The scheme of peer url %s is HTTP while client cert auth "
                "(--peer-client-cert-auth) is enabled. Ignored client cert auth for this url.",
                u,
            )
    creds = info.server_credentials() if any(u.is_tls for u in cfg.listen_peer_urls) else None
    return info, creds


def _client_tls(cfg: Config) -> tuple[TLSInfo, grpc.ServerCredentials | None]:
    """Client TLS (auto TLS generates it), checked as etcd's configureClientListeners does."""
    info = client_tls_info(cfg)
    for u in cfg.listen_client_urls:
        if u.is_tls and info.empty():
            raise ConfigError(
                "TLS key/cert (--cert-file, --key-file) must be provided "
                f"for client url {u} with HTTPS scheme"
            )
        if not u.is_tls and not info.empty():
            # sic: etcd says "peer" here too
            log.warning(
                "embed: The scheme of client url %s is HTTP while peer key/cert files are presented. "
                "Ignored key/cert files.",
                u,
            )
        if not u.is_tls and info.client_cert_auth:
            log.warning(
                "embed: The scheme of client url %s is HTTP while client cert auth (--client-cert-auth) "
                "is enabled. Ignored client cert auth for this url.",
                u,
            )
    for u in (*cfg.listen_metrics_urls, *cfg.listen_client_http_urls):
        if u.is_tls and info.empty():
            raise _no_tls_error(u)
    tls_urls = [*cfg.listen_client_urls, *cfg.listen_metrics_urls, *cfg.listen_client_http_urls]
    creds = info.server_credentials() if any(u.is_tls for u in tls_urls) else None
    return info, creds


def _cert_gates(
    info: TLSInfo, credentials: grpc.ServerCredentials | None, *, hold: bool, check_san: bool = False
) -> list[grpc.aio.ServerInterceptor]:
    """The CRL / allowed CN / allowed hostname checks of one side (and the peer port's SAN
    check), as the first interceptor of its server; none without TLS on that side or without
    anything to check (cert_gate.py, peer_san.py)."""
    if credentials is None and info.empty():  # no TLS on this side: nothing to check or load
        return []
    from minietcd.server.cert_gate import CertGate

    # Built whenever cert files are given, even for http URLs: etcd's baseConfig then refuses
    # an allowed CN together with an allowed hostname (ConfigError), as CertRules does.
    rules = info.cert_rules(check_san=check_san)
    return [CertGate(rules, hold=hold)] if credentials is not None and rules.active else []


def _start(cfg: Config) -> Start | None:
    if DiskStorage.exists(cfg.data_dir, cfg.wal_dir):
        if cfg.discovery or cfg.discovery_endpoints:
            log.warning(
                "etcdserver: discovery token ignored since a cluster has already been initialized. "
                "Valid log found at %r",
                cfg.wal_path,
            )
        log.info("etcdserver: restarting member from existing data dir %s", cfg.data_dir)
        return restart(cfg)
    if cfg.initial_cluster_state == "existing" or cfg.discovery or cfg.discovery_srv or cfg.discovery_endpoints:  # noqa: E501
        return None  # joins, or finds its members (DNS, discovery service): needs the network
    return bootstrap_new(cfg)


async def _start_networked(cfg: Config, stop: asyncio.Event) -> Start | None:
    """The starts :func:`_start` leaves for later; None if stopped while discovering."""
    return await start_networked(cfg, stop)


class _Stopped(Exception):
    """Stopped (SIGTERM/SIGINT) before the member was built: clean up, exit 0."""


class Member:
    """One running member: storage, state machine, Raft node, transport and servers."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop_requested = asyncio.Event()
        self.ready = asyncio.Event()  # set with "ready to serve client requests" (minietcd.embed waits on it)
        self.grpc_server: grpc.aio.Server | None = None
        self.clients: ClientListeners | None = None  # bound by run()
        self.client_http: ClientHttp | None = None  # serves HTTP on the client URLs
        self.grpc_engine: H2GrpcServer | None = None  # plain URLs' gRPC (server/h2grpc)
        self.metrics_http: list[HttpServer] = []  # the --listen-metrics-urls servers
        self.tasks: list[asyncio.Task[None]] = []
        # Set if the member stopped itself (fail-stop, DESIGN rule 8): the process exits 1.
        self.failure: MemberFailedError | None = None
        self.sm: StateMachine | None = None  # opened by _build

    async def run(self) -> None:
        cfg = self.cfg
        # TLS first, as etcd configures its listeners first: bad TLS settings fail before any
        # data is written.
        self.peer_tls, peer_credentials = _peer_tls(cfg)
        self.client_tls, self.client_credentials = _client_tls(cfg)
        # --auth-token too: a malformed one fails the start before anything is written.
        self.tokens = parse_auth_token(cfg.auth_token, float(cfg.auth_token_ttl))
        check_data_dir(cfg)
        # Every listener is bound before the data dir is touched: a taken port fails the start
        # with etcd's words and leaves nothing behind (listeners.py).
        peer_server = bind_peer_server(
            [str(u) for u in cfg.listen_peer_urls],
            peer_credentials,
            interceptors=_cert_gates(
                self.peer_tls,
                peer_credentials,
                hold=False,
                check_san=not cfg.experimental_peer_skip_client_san_verification,
            ),
        )
        try:
            self.clients = self._bind_clients()
            self.grpc_server = self.clients.grpc
            metrics_sockets = bind_sockets(cfg.listen_metrics_urls)
        except BaseException:
            await close_grpc(peer_server)
            await close_unstarted(self.clients)
            raise
        first = FirstStart.record(cfg)
        start: Start | None = None
        try:
            if first is None:
                discard_blank_wal(cfg)
                first = FirstStart.record(cfg)
            start = _start(cfg) or await _start_networked(cfg, self.stop_requested)
            if start is None:
                raise _Stopped  # SIGTERM/SIGINT while waiting for the discovery service
            node, transport, server, hub = self._build(start, peer_credentials)
            if cfg.experimental_initial_corrupt_check and start.restarted:
                await self._initial_corrupt_check(start, transport)  # before serving anything
            for peer, urls in start.initial_peer_urls.items():
                transport.add_peer(peer, urls)
            node._sync_peers()
            await transport.serve(peer_server)
        except BaseException as e:
            # Nothing durable has been said yet: a failed first start leaves no data dir.
            if self.sm is not None:
                self.sm.close(commit=False)
            if start is not None:
                start.storage.close()
            if first is not None:
                first.undo()
            await close_grpc(peer_server)
            await close_unstarted(self.clients)
            for sock in metrics_sockets:
                sock.close()
            if isinstance(e, _Stopped):
                return
            raise
        for u in cfg.listen_peer_urls:
            log.info("embed: listening for peers on %s", u)
        node.start()
        server.start()
        stored_version = server.sm.membership.cluster_version  # a restart knows it (etcd: from its snapshot)
        log.info(
            "etcdserver: starting server... [version: %s, cluster version: %s]",
            ETCD_API_VERSION,
            major_minor(stored_version) if stored_version else "to_be_decided",
        )
        api = self._api(server, hub)
        try:
            await self._serve_clients(api)
            await self._serve_metrics(server, metrics_sockets)
            self.tasks.append(asyncio.create_task(self._publish(server)))
            self.tasks.append(asyncio.create_task(server.ensure_cluster_version()))
            await self.stop_requested.wait()
        finally:
            self.failure = node.failure
            if self.failure is None:  # a failed member's core is suspect: just stop
                await server.transfer_leadership_on_shutdown()
            log.info("etcdserver: stopping member %x", start.member_id)
            for t in self.tasks:
                t.cancel()
            if self.client_http is not None:
                await self.client_http.stop_accepting()  # no new connection while gRPC drains
            stops: list[Awaitable[object]] = []  # both gRPC engines drain within the same second
            if self.grpc_server is not None:
                stops.append(self.grpc_server.stop(grace=1))
            if self.grpc_engine is not None:
                stops.append(self.grpc_engine.stop(grace=1))
            await asyncio.gather(*stops)
            if self.client_http is not None:
                await self.client_http.close()
            for h in self.metrics_http:
                await h.close()
            await server.stop()
            await api.close()
            await node.stop()
            await transport.stop()
            try:
                # A failed member drops its open batch: the WAL has those entries (fail-stop).
                server.sm.close(commit=self.failure is None)
                start.storage.close()
            except Exception as e:  # the disk that failed the member may fail this too
                log.warning("etcdserver: closing storage: %s", error_text(e))
            log.info("etcdserver: stopped member %x", start.member_id)

    def _build(
        self, start: Start, peer_credentials: grpc.ServerCredentials | None
    ) -> tuple[RaftNode, Transport, EtcdServer, WatchHub]:
        """The state machine (its database, plus the committed log tail it had not applied),
        the Raft node, the peer transport and the application API of a member, wired together,
        none started."""
        cfg = self.cfg
        mid, cid = start.member_id, start.cluster_id
        log.info("etcdserver: starting member %x in cluster %x", mid, cid)

        sm = StateMachine.open(
            cfg.data_dir,
            clock=time.monotonic,
            min_lease_ttl=min_lease_ttl(cfg.election_ticks, cfg.heartbeat_interval),
            member_id=mid,
            fresh=start.storage.was_new,
            batch_interval=cfg.backend_batch_interval.total_seconds(),
            batch_limit=cfg.backend_batch_limit,
        )
        self.sm = sm
        hub = WatchHub(sm.kv)  # watchers see every write this member applies
        sm.restore_hooks.append(hub.after_restore)
        recovered = recover(start.storage, sm)  # the committed log tail, applied directly
        rawnode = RawNode(
            RaftConfig(
                id=mid,
                storage=start.storage,
                election_tick=cfg.election_ticks,
                heartbeat_tick=1,
                applied=recovered.applied,
                pre_vote=cfg.pre_vote,
                check_quorum=True,  # etcd always runs with check-quorum
                rng=random.Random(),
            )
        )
        if start.peers:
            rawnode.bootstrap(start.peers)

        node: RaftNode
        transport = Transport(
            cluster_id=cid,
            member_id=mid,
            on_message=lambda m: node.step(m),
            on_unreachable=lambda peer: node.report_unreachable(peer),
            on_snapshot_status=lambda peer, ok: node.report_snapshot(peer, ok),
            members_provider=lambda: self._members_pb(sm, cid),
            server_credentials=peer_credentials,
            # Without peer TLS the transport dials as it always has (plain http, system roots).
            channel_factory=None if self.peer_tls.empty() else ChannelOpener(self.peer_tls),
            snapshot_sink=snapshot_sink(sm.backend),  # snapshot databases go beside the backend
            hash_kv=sm.hash_kv,  # a peer's initial corruption check asks for it
        )
        node = RaftNode(
            rawnode=rawnode,
            storage=start.storage,
            transport=transport,
            sm=sm,
            tick_seconds=cfg.heartbeat_interval / 1000,
            snapshot_count=cfg.snapshot_count,
            on_removed=self.stop_requested.set,
        )
        server: EtcdServer
        sm.auth.attach_tokens(self.tokens)
        if isinstance(self.tokens, SimpleTokens):  # a token from another member may be ahead
            self.tokens.applied_index = lambda: node.applied_index
            self.tokens.wait_applied = lambda index: server.wait_applied(index)
        server = EtcdServer(
            member_id=mid,
            cluster_id=cid,
            name=cfg.name,
            sm=sm,
            node=node,
            election_timeout=cfg.election_timeout / 1000,
            max_request_bytes=cfg.max_request_bytes,
            quota_bytes=cfg.backend_quota_bytes or 0,
            active_since=transport.active_since,
        )
        self.server = server
        return node, transport, server, hub

    async def _initial_corrupt_check(self, start: Start, transport: Transport) -> None:
        """--experimental-initial-corrupt-check (corrupt.py): InconsistentDataError fails the start."""
        assert self.sm is not None  # opened by _build
        sm = self.sm
        await check_initial_hash_kv(
            member_id=start.member_id,
            cluster_id=start.cluster_id,
            hash_kv=sm.hash_kv,
            peers=[(m.id, m.peer_urls) for m in sm.membership.sorted_members() if m.id != start.member_id],
            open_channel=transport.open_channel,
            timeout=request_timeout(self.cfg.election_timeout),
        )

    @staticmethod
    def _members_pb(sm: StateMachine, cluster_id: int) -> raft_pb2.MembersResponse:
        return raft_pb2.MembersResponse(
            cluster_id=cluster_id,
            members=[
                raft_pb2.Member(
                    id=m.id,
                    name=m.name,
                    peer_urls=m.peer_urls,
                    client_urls=m.client_urls,
                    is_learner=m.is_learner,
                )
                for m in sm.membership.sorted_members()
            ],
        )

    def _bind_clients(self) -> ClientListeners:
        """The client gRPC server and the client URLs' sockets, bound, not yet serving."""
        cfg = self.cfg
        listeners = bind_client_listeners(
            cfg.listen_client_urls,
            cfg.listen_client_http_urls,
            credentials=self.client_credentials,
            # No decode guard here: it is part of every method's handler (v3rpc/services.py).
            # The certificate checks stay an interceptor: only with TLS and a CRL/allowed-name flag.
            interceptors=_cert_gates(self.client_tls, self.client_credentials, hold=True),
            options=[
                ("grpc.max_receive_message_length", cfg.max_request_bytes + GRPC_OVERHEAD),
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ],
        )
        for u in cfg.listen_client_urls:
            log.info("embed: listening for client requests on %s", _host_port(u))
        for u in cfg.listen_client_http_urls:
            log.info("embed: listening for client requests on %s", _host_port(u))
        return listeners

    def _api(self, server: EtcdServer, hub: WatchHub) -> Api:
        """The application API every face of this member calls."""
        cfg = self.cfg
        options = ApiOptions(
            max_txn_ops=cfg.max_txn_ops,
            strict_reconfig_check=cfg.strict_reconfig_check,
            # Lease calls forwarded to the leader's client URL use this member's client TLS.
            open_channel=ChannelOpener(None if self.client_tls.empty() else self.client_tls),
            bcrypt_cost=cfg.bcrypt_cost,
            # As etcd: the CN counts only where client certificates are verified.
            client_cert_auth=self.client_tls.client_cert_auth,
        )
        return Api(server, hub, options)

    async def _serve_clients(self, api: Api) -> None:
        """The gRPC face and the HTTP one: one servicer per etcd service, each an adapter of
        the API, served through one generic handler (v3rpc/services.py says why), with no
        interceptor unless client certificates are checked beyond the CA (cert_gate.py)."""
        gs = self.grpc_server
        assert gs is not None  # bound by run()
        table = client_services(api)
        gs.add_generic_rpc_handlers((table,))
        engine = None
        if h2grpc_enabled():  # plain URLs' gRPC on the loop, not through grpcio (server/h2grpc)
            from minietcd.server.h2grpc.server import H2GrpcServer

            max_receive = self.cfg.max_request_bytes + GRPC_OVERHEAD
            self.grpc_engine = H2GrpcServer(table, max_receive, self.cfg.max_concurrent_streams)
            engine = self.grpc_engine.protocol
            log.debug("embed: gRPC on plain client URLs served by h2grpc")
        if not self.client_tls.empty():
            log.info("embed: ClientTLS: %s", self.client_tls)
        await gs.start()
        assert self.clients is not None
        ssl_context = self.client_tls.server_ssl_context if not self.client_tls.empty() else None
        self.client_http = ClientHttp(self.server, api, self.clients, ssl_context, self.cfg, engine)
        await self.client_http.start()

    async def _serve_metrics(self, server: EtcdServer, sockets: list[socket.socket]) -> None:
        if not sockets:
            return
        # The HTTP server's modules only with --listen-metrics-urls (or a first HTTP client).
        from minietcd.server.http import make_metrics_server

        for u, sock in zip(self.cfg.listen_metrics_urls, sockets, strict=True):
            http = make_metrics_server(server)
            ssl_context = self.client_tls.server_ssl_context() if u.is_tls else None  # as etcd: client TLS
            await http.listen(sock, ssl_context)
            self.metrics_http.append(http)
            log.info("embed: serving metrics (/metrics, /health, /version) on %s", u)

    async def _publish(self, server: EtcdServer) -> None:
        await server.publish([str(u) for u in self.cfg.advertise_client_urls])
        log.info("embed: ready to serve client requests")
        self.ready.set()
        for u in self.cfg.listen_client_urls:
            if u.is_tls:
                log.info("embed: serving client requests on %s", _host_port(u))
            else:
                log.info(
                    "embed: serving insecure client requests on %s, this is strongly discouraged!",
                    _host_port(u),
                )


async def serve(cfg: Config) -> int:
    member = Member(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, member.stop_requested.set)
    trim = asyncio.create_task(_trim_when_ready(member))
    try:
        await member.run()
    finally:
        trim.cancel()
    return 1 if member.failure is not None else 0  # the fatal line was logged by RaftNode.fail


async def _trim_when_ready(member: Member) -> None:
    """Start-up's freed heap pages back to the system once the member serves (memory.py)."""
    await member.ready.wait()
    trim_heap()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = parse_config(args, os.environ)
    except UsageError as e:
        print(e, file=sys.stderr)
        print(USAGE_LINE, file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"etcdmain: {e}", file=sys.stderr)
        return 1
    if cfg.help:
        print(USAGE_LINE, file=sys.stderr)
        print(help_text(), end="")
        return 0
    if cfg.version:
        print(version_text(), end="")
        return 0
    setup_logging(cfg.log_level)
    log.info("etcdmain: etcd Version: %s (minietcd %s)", ETCD_API_VERSION, __version__)
    log.info("etcdmain: Python Version: %s", sys.version.split()[0])
    for w in cfg.unimplemented_warnings():
        log.warning("etcdmain: %s", w)
    log.info("etcdserver: name = %s", cfg.name)
    log.info("etcdserver: data dir = %s", cfg.data_dir)
    log.info("etcdserver: heartbeat = %dms", cfg.heartbeat_interval)
    log.info("etcdserver: election = %dms", cfg.election_timeout)
    log.info("etcdserver: snapshot count = %d", cfg.snapshot_count)
    # The cyclic collector's default young generation (700 objects) runs a collection every few
    # requests: each RPC leaves tasks, futures and frames behind until they die by reference
    # count. Measured under put load: 11 us of collections per request by default, 3.4 us at
    # 10,000 (pauses of 2-3 ms, far below a heartbeat). The key index stays out of it anyway
    # (apply.py's _freeze_gc). The command only: an embedded member leaves its host's GC alone.
    gc.set_threshold(10_000, 10, 10)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(serve(cfg))
    except Exception as e:  # every start-up failure: one fatal line in etcd's words, exit 1
        lines = getattr(e, "etcdmain_lines", None)
        if lines:  # etcdmain's own explanation (v2 discovery failures), at etcd's levels
            for level, line in lines:
                log.log(level, "etcdmain: %s", line)
        else:
            log.critical("etcdmain: %s", error_text(e))
        log.debug("the error behind the fatal line above", exc_info=e)  # --log-level debug
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
