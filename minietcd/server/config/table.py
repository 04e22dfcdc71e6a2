"""The table: every etcd 3.4 flag, declared once, as a typed field with its typed default.

Each field of :class:`EtcdFlags` is one flag (``--initial-cluster-token`` is
``initial_cluster_token``): its Python type, its default (what ``etcd`` with no flags uses),
its Go kind, its ``--help`` section and text (etcd's help.go, verbatim, so ``--help`` is
byte-identical to etcd's), its config-file key and whether minietcd acts on it. Parsing
(:mod:`.parse`), ``ETCD_*`` variables, the YAML file (:mod:`.file`) and ``--help``
(:mod:`.help`) all read :data:`FLAGS`, which is derived from these fields.

To make minietcd honour a flag, set ``implemented=True`` on its line; nothing else changes.
Fields are in ``etcd --help`` order, then the flags etcd registers without listing them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from minietcd.server.config.spec import (
    CLUSTER_STATE_EXISTING,
    CLUSTER_STATE_NEW,
    DEFAULT_INITIAL_CLUSTER,
    DEFAULT_LISTEN_CLIENT_URL,
    DEFAULT_LISTEN_PEER_URL,
    DEFAULT_NAME,
    LOG_OUTPUT_DEFAULT,
    SPEC_KEY,
    FlagSpec,
    Kind,
    Section,
)
from minietcd.server.urls import URL

MEMBER: Final = Section("Member:")
CLUSTERING: Final = Section("Clustering:")
SECURITY: Final = Section("Security:")
AUTH: Final = Section("Auth:")
MONITORING: Final = Section("Profiling and Monitoring:")
LOGGING: Final = Section("Logging:")
PROXY: Final = Section("v2 Proxy (to be deprecated in v4):")
EXPERIMENTAL: Final = Section("Experimental feature:")
UNSAFE: Final = Section("Unsafe feature:")
DEPRECATED: Final = Section("TO BE DEPRECATED:")
UNLISTED: Final = Section(None)

CLIENT_TLS: Final = "client-transport-security."
PEER_TLS: Final = "peer-transport-security."

# Duration defaults (named so the defaults read as constants, not calls).
_NO_TIME: Final = timedelta(0)
_2S: Final = timedelta(seconds=2)
_5S: Final = timedelta(seconds=5)
_20S: Final = timedelta(seconds=20)
_2H: Final = timedelta(hours=2)
_100MS: Final = timedelta(milliseconds=100)


@dataclass(frozen=True, slots=True)
class EtcdFlags:
    """One field per etcd flag, defaults as ``etcd`` with no flags (see the module doc).

    Durations are :class:`~datetime.timedelta` (etcd's Go durations, to the microsecond);
    URL lists are tuples of :class:`~minietcd.server.urls.URL`, sorted as etcd sorts them.
    """

    # --- Member:
    name: str = MEMBER.flag(
        Kind.STRING, DEFAULT_NAME, "'default'",
        "Human-readable name for this member.", implemented=True,
    )
    #: Resolved: etcd's empty default becomes "<name>.etcd" after parsing.
    data_dir: str = MEMBER.flag(
        Kind.STRING, "default.etcd", "'${name}.etcd'",
        "Path to the data directory.", implemented=True,
    )
    wal_dir: str = MEMBER.flag(
        Kind.STRING, "", "''",
        "Path to the dedicated wal directory.", implemented=True,
    )
    snapshot_count: int = MEMBER.flag(
        Kind.UINT64, 100000, "'100000'",
        "Number of committed transactions to trigger a snapshot to disk.", implemented=True,
    )
    heartbeat_interval: int = MEMBER.flag(
        Kind.UINT, 100, "'100'",
        "Time (in milliseconds) of a heartbeat interval.", implemented=True,
    )
    election_timeout: int = MEMBER.flag(
        Kind.UINT, 1000, "'1000'",
        "Time (in milliseconds) for an election to timeout. See tuning documentation for details.",
        implemented=True,
    )
    initial_election_tick_advance: bool = MEMBER.flag(
        Kind.BOOL, True, "'true'",
        "Whether to fast-forward initial election ticks on boot for faster election.",
    )
    listen_peer_urls: tuple[URL, ...] = MEMBER.flag(
        Kind.URLS, (DEFAULT_LISTEN_PEER_URL,), "'http://localhost:2380'",
        "List of URLs to listen on for peer traffic.", implemented=True,
    )
    listen_client_urls: tuple[URL, ...] = MEMBER.flag(
        Kind.URLS, (DEFAULT_LISTEN_CLIENT_URL,), "'http://localhost:2379'",
        "List of URLs to listen on for client traffic.", implemented=True,
    )
    max_snapshots: int = MEMBER.flag(
        Kind.UINT, 5, "'5'",
        "Maximum number of snapshot files to retain (0 is unlimited).",
    )
    max_wals: int = MEMBER.flag(
        Kind.UINT, 5, "'5'",
        "Maximum number of wal files to retain (0 is unlimited).",
    )
    #: 0 means DEFAULT_QUOTA_BYTES, negative disables the quota; see ``backend_quota_bytes``.
    quota_backend_bytes: int = MEMBER.flag(
        Kind.INT64, 0, "'0'",
        "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
        implemented=True,
    )
    backend_batch_interval: timedelta = MEMBER.flag(
        Kind.DURATION, _NO_TIME, "''",
        "BackendBatchInterval is the maximum time before commit the backend transaction.",
        implemented=True,
    )
    backend_batch_limit: int = MEMBER.flag(
        Kind.INT, 0, "'0'",
        "BackendBatchLimit is the maximum operations before commit the backend transaction.",
        implemented=True,
    )
    max_txn_ops: int = MEMBER.flag(
        Kind.UINT, 128, "'128'",
        "Maximum number of operations permitted in a transaction.", implemented=True,
    )
    max_request_bytes: int = MEMBER.flag(
        Kind.UINT, 1572864, "'1572864'",
        "Maximum client request size in bytes the server will accept.", implemented=True,
    )
    max_concurrent_streams: int = MEMBER.flag(
        Kind.UINT32, 2**32 - 1, "'math.MaxUint32'",
        "Maximum concurrent streams that each client can open at a time.",
    )
    grpc_keepalive_min_time: timedelta = MEMBER.flag(
        Kind.DURATION, _5S, "'5s'",
        "Minimum duration interval that a client should wait before pinging server.",
    )
    grpc_keepalive_interval: timedelta = MEMBER.flag(
        Kind.DURATION, _2H, "'2h'",
        "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
    )
    grpc_keepalive_timeout: timedelta = MEMBER.flag(
        Kind.DURATION, _20S, "'20s'",
        "Additional duration of wait before closing a non-responsive connection (0 to disable).",
    )

    # --- Clustering:
    initial_advertise_peer_urls: tuple[URL, ...] = CLUSTERING.flag(
        Kind.URLS, (DEFAULT_LISTEN_PEER_URL,), "'http://localhost:2380'",
        "List of this member's peer URLs to advertise to the rest of the cluster.", implemented=True,
    )
    #: Derived from name + initial-advertise-peer-urls when only --name is given, as etcd does.
    initial_cluster: str = CLUSTERING.flag(
        Kind.STRING, DEFAULT_INITIAL_CLUSTER, "'default=http://localhost:2380'",
        "Initial cluster configuration for bootstrapping.", implemented=True,
    )
    initial_cluster_state: str = CLUSTERING.flag(
        Kind.CHOICE, CLUSTER_STATE_NEW, "'new'",
        "Initial cluster state ('new' or 'existing').",
        choices=(CLUSTER_STATE_NEW, CLUSTER_STATE_EXISTING), implemented=True,
    )
    initial_cluster_token: str = CLUSTERING.flag(
        Kind.STRING, "etcd-cluster", "'etcd-cluster'",
        "Initial cluster token for the etcd cluster during bootstrap.",
        "Specifying this can protect you from unintended cross-cluster interaction when running multiple "
        "clusters.", implemented=True,
    )
    #: Empty only if validation already failed; kept as a tuple for uniformity.
    advertise_client_urls: tuple[URL, ...] = CLUSTERING.flag(
        Kind.URLS, (DEFAULT_LISTEN_CLIENT_URL,), "'http://localhost:2379'",
        "List of this member's client URLs to advertise to the public.",
        "The client URLs advertised should be accessible to machines that talk to etcd cluster. etcd client "
        "libraries parse these URLs to connect to the cluster.", implemented=True,
    )
    discovery: str = CLUSTERING.flag(
        Kind.STRING, "", "''",
        "Discovery URL used to bootstrap the cluster.", implemented=True,
    )
    discovery_fallback: str = CLUSTERING.flag(
        Kind.CHOICE, "proxy", "'proxy'",
        "Expected behavior ('exit' or 'proxy') when discovery services fails.",
        '"proxy" supports v2 API only.', choices=("proxy", "exit"), implemented=True,
    )
    discovery_proxy: str = CLUSTERING.flag(
        Kind.STRING, "", "''",
        "HTTP proxy to use for traffic to discovery service.", implemented=True,
    )
    discovery_srv: str = CLUSTERING.flag(
        Kind.STRING, "", "''",
        "DNS srv domain used to bootstrap the cluster.", implemented=True,
    )
    discovery_srv_name: str = CLUSTERING.flag(
        Kind.STRING, "", "''",
        "Suffix to the dns srv name queried when bootstrapping.", implemented=True,
    )
    strict_reconfig_check: bool = CLUSTERING.flag(
        Kind.BOOL, True, "'true'",
        "Reject reconfiguration requests that would cause quorum loss.", implemented=True,
    )
    pre_vote: bool = CLUSTERING.flag(
        Kind.BOOL, False, "'false'",
        "Enable to run an additional Raft election phase.", implemented=True,
    )
    auto_compaction_retention: str = CLUSTERING.flag(
        Kind.STRING, "0", "'0'",
        "Auto compaction retention length. 0 means disable auto compaction.",
    )
    #: "periodic", "revision", or "" (only from a config file; see ``auto_compaction``).
    auto_compaction_mode: str = CLUSTERING.flag(
        Kind.STRING, "periodic", "'periodic'",
        "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based "
        "retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision "
        "number based retention.",
    )
    enable_v2: bool = CLUSTERING.flag(Kind.BOOL, False, "'false'", "Accept etcd V2 client requests.")

    # --- Security:
    cert_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the client server TLS cert file.", yaml=CLIENT_TLS + "cert-file", implemented=True,
    )
    key_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the client server TLS key file.", yaml=CLIENT_TLS + "key-file", implemented=True,
    )
    client_cert_auth: bool = SECURITY.flag(
        Kind.BOOL, False, "'false'",
        "Enable client cert authentication.", yaml=CLIENT_TLS + "client-cert-auth", implemented=True,
    )
    client_crl_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the client certificate revocation list file.", yaml=None, implemented=True,
    )
    client_cert_allowed_hostname: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Allowed TLS hostname for client cert authentication.", yaml=None, implemented=True,
    )
    trusted_ca_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the client server TLS trusted CA cert file.",
        yaml=CLIENT_TLS + "trusted-ca-file", implemented=True,
    )
    auto_tls: bool = SECURITY.flag(
        Kind.BOOL, False, "'false'",
        "Client TLS using generated certificates.", yaml=CLIENT_TLS + "auto-tls", implemented=True,
    )
    peer_cert_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the peer server TLS cert file.", yaml=PEER_TLS + "cert-file", implemented=True,
    )
    peer_key_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the peer server TLS key file.", yaml=PEER_TLS + "key-file", implemented=True,
    )
    peer_client_cert_auth: bool = SECURITY.flag(
        Kind.BOOL, False, "'false'",
        "Enable peer client cert authentication.", yaml=PEER_TLS + "client-cert-auth", implemented=True,
    )
    peer_trusted_ca_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the peer server TLS trusted CA file.", yaml=PEER_TLS + "trusted-ca-file", implemented=True,
    )
    peer_cert_allowed_cn: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Required CN for client certs connecting to the peer endpoint.", yaml=None, implemented=True,
    )
    peer_cert_allowed_hostname: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Allowed TLS hostname for inter peer authentication.", yaml=None, implemented=True,
    )
    peer_auto_tls: bool = SECURITY.flag(
        Kind.BOOL, False, "'false'",
        "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not "
        "provided.", yaml=PEER_TLS + "auto-tls", implemented=True,
    )
    peer_crl_file: str = SECURITY.flag(
        Kind.STRING, "", "''",
        "Path to the peer certificate revocation list file.", yaml=None, implemented=True,
    )
    cipher_suites: tuple[str, ...] = SECURITY.flag(
        Kind.STRINGS, (), "''",
        "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be "
        "auto-populated by Go).",
    )
    cors: tuple[str, ...] = SECURITY.flag(
        Kind.CORS, ("*",), "'*'",
        "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means "
        "allow all).", implemented=True,
    )
    host_whitelist: tuple[str, ...] = SECURITY.flag(
        Kind.UNIQUE_STRINGS, ("*",), "'*'",
        "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow "
        "all).", implemented=True,
    )

    # --- Auth:
    auth_token: str = AUTH.flag(
        Kind.STRING, "simple", "'simple'",
        "Specify a v3 authentication token type and its options ('simple' or 'jwt').", implemented=True,
    )
    bcrypt_cost: int = AUTH.flag(
        Kind.UINT, 10, "10",
        "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are "
        "between 4 and 31.", implemented=True,
    )
    auth_token_ttl: int = AUTH.flag(
        Kind.UINT, 300, "300", "Time (in seconds) of the auth-token-ttl.", implemented=True
    )

    # --- Profiling and Monitoring:
    enable_pprof: bool = MONITORING.flag(
        Kind.BOOL, False, "'false'",
        'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"',
    )
    metrics: str = MONITORING.flag(
        Kind.STRING, "basic", "'basic'",
        "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.",
    )
    listen_metrics_urls: tuple[URL, ...] = MONITORING.flag(
        Kind.URLS, (), "''",
        "List of URLs to listen on for the metrics and health endpoints.", implemented=True,
    )

    # --- Logging:
    logger: str = LOGGING.flag(
        Kind.STRING, "capnslog", "'capnslog'",
        "Specify 'zap' for structured logging or 'capnslog'. [WARN] 'capnslog' will be deprecated in v3.5.",
        implemented=True,
    )
    log_outputs: tuple[str, ...] = LOGGING.flag(
        Kind.UNIQUE_STRINGS, (LOG_OUTPUT_DEFAULT,), "'default'",
        "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of "
        "comma separated output targets.",
    )
    log_level: str = LOGGING.flag(
        Kind.STRING, "info", "'info'",
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.", implemented=True,
    )

    # --- v2 Proxy (to be deprecated in v4):
    proxy: str = PROXY.flag(
        Kind.CHOICE, "off", "'off'",
        "Proxy mode setting ('off', 'readonly' or 'on').", choices=("off", "readonly", "on"),
    )
    proxy_failure_wait: int = PROXY.flag(
        Kind.UINT, 5000, "5000",
        "Time (in milliseconds) an endpoint will be held in a failed state.",
    )
    proxy_refresh_interval: int = PROXY.flag(
        Kind.UINT, 30000, "30000",
        "Time (in milliseconds) of the endpoints refresh interval.",
    )
    proxy_dial_timeout: int = PROXY.flag(
        Kind.UINT, 1000, "1000",
        "Time (in milliseconds) for a dial to timeout.",
    )
    proxy_write_timeout: int = PROXY.flag(
        Kind.UINT, 5000, "5000",
        "Time (in milliseconds) for a write to timeout.",
    )
    proxy_read_timeout: int = PROXY.flag(Kind.UINT, 0, "0", "Time (in milliseconds) for a read to timeout.")

    # --- Experimental feature: etcd's flag defaults, not its help text: "" / 0 mean "etcd's
    # built-in value" (array freelist, 1000-revision batches, 10m progress notify).
    experimental_initial_corrupt_check: bool = EXPERIMENTAL.flag(
        Kind.BOOL, False, "'false'",
        "Enable to check data corruption before serving any client/peer traffic.", implemented=True,
    )
    experimental_corrupt_check_time: timedelta = EXPERIMENTAL.flag(
        Kind.DURATION, _NO_TIME, "'0s'",
        "Duration of time between cluster corruption check passes.",
    )
    experimental_enable_v2v3: str = EXPERIMENTAL.flag(
        Kind.STRING, "", "''",
        "Serve v2 requests through the v3 backend under a given prefix.",
    )
    experimental_backend_bbolt_freelist_type: str = EXPERIMENTAL.flag(
        Kind.STRING, "", "'array'",
        "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and "
        "map are supported types).",
    )
    experimental_enable_lease_checkpoint: bool = EXPERIMENTAL.flag(
        Kind.BOOL, False, "'false'",
        "ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent "
        "indefinite auto-renewal of long lived leases.",
    )
    experimental_compaction_batch_limit: int = EXPERIMENTAL.flag(
        Kind.INT, 0, "1000",
        "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.",
    )
    experimental_peer_skip_client_san_verification: bool = EXPERIMENTAL.flag(
        Kind.BOOL, False, "'false'",
        "Skip verification of SAN field in client certificate for peer connections.", yaml=None,
        implemented=True,
    )
    experimental_watch_progress_notify_interval: timedelta = EXPERIMENTAL.flag(
        Kind.DURATION, _NO_TIME, "'10m'",
        "Duration of periodical watch progress notification.",
    )
    experimental_warning_apply_duration: timedelta = EXPERIMENTAL.flag(
        Kind.DURATION, _100MS, "'100ms'",
        "Warning is generated if requests take more than this duration.",
    )

    # --- Unsafe feature:
    force_new_cluster: bool = UNSAFE.flag(
        Kind.BOOL, False, "'false'",
        "Force to create a new one-member cluster.",
    )

    # --- TO BE DEPRECATED:
    debug: bool = DEPRECATED.flag(
        Kind.BOOL, False, "'false'",
        "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5. Use '--log-level=debug' "
        "instead.",
    )
    log_package_levels: str = DEPRECATED.flag(
        Kind.STRING, "", "''",
        "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
    )

    # --- registered by etcd, not listed by its --help
    config_file: str = UNLISTED.flag(Kind.STRING, "", "", yaml=None, implemented=True)
    version: bool = UNLISTED.flag(Kind.BOOL, False, "", yaml=None, implemented=True)
    #: Deprecated spelling of log-outputs; reconciled with it as etcd 3.4 does.
    log_output: tuple[str, ...] = UNLISTED.flag(Kind.UNIQUE_STRINGS, (LOG_OUTPUT_DEFAULT,), "")
    enable_grpc_gateway: bool = UNLISTED.flag(Kind.BOOL, True, "", implemented=True)
    experimental_enable_lease_checkpoint_persist: bool = UNLISTED.flag(Kind.BOOL, False, "")
    unsafe_no_fsync: bool = UNLISTED.flag(Kind.BOOL, False, "")
    #: etcd 3.6's v3 discovery (``--discovery-endpoints`` / ``--discovery-token``); etcd 3.4 has
    #: only the v2 ``--discovery`` URL. See minietcd/server/discovery.py and docs/discovery.md.
    discovery_endpoints: tuple[str, ...] = UNLISTED.flag(
        Kind.STRINGS, (), "''",
        "V3 discovery: List of gRPC endpoints of the discovery service. (etcd 3.6; etcd 3.4 has only the v2 "
        "--discovery URL)", yaml=None, implemented=True,
    )
    discovery_token: str = UNLISTED.flag(
        Kind.STRING, "", "''",
        "V3 discovery: discovery token for the etcd cluster to be bootstrapped. (etcd 3.6)",
        yaml=None, implemented=True,
    )
    discovery_dial_timeout: timedelta = UNLISTED.flag(
        Kind.DURATION, _2S, "'2s'",
        "V3 discovery: dial timeout for client connections. (etcd 3.6)", yaml=None, implemented=True,
    )
    #: etcd 3.5: HTTP (the JSON gateway, /health, /metrics...) on these URLs only; the client
    #: URLs then serve gRPC only (minietcd/server/client_listeners.py).
    listen_client_http_urls: tuple[URL, ...] = UNLISTED.flag(
        Kind.URLS, (), "''",
        "List of URLs to listen on for http only client traffic. Enabling this flag removes http services "
        "from --listen-client-urls. (etcd 3.5)", implemented=True,
    )
    discovery_request_timeout: timedelta = UNLISTED.flag(
        Kind.DURATION, _5S, "'5s'",
        "V3 discovery: timeout for discovery requests (excluding dial timeout). (etcd 3.6)",
        yaml=None, implemented=True,
    )


#: Obsolete etcd 0.4 flags (etcdmain/config.go "ignored"): etcd warns and goes on. No field.
_IGNORED: Final = (
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
    "test.coverprofile",
    "test.outputdir",
)


def _specs() -> tuple[FlagSpec, ...]:
    out = [
        dataclasses.replace(f.metadata[SPEC_KEY], name=f.name.replace("_", "-"))
        for f in dataclasses.fields(EtcdFlags)
    ]
    out += [FlagSpec(name, Kind.IGNORED, yaml=None) for name in _IGNORED]
    return tuple(out)


#: Every flag etcd 3.4.23 registers, in ``etcd --help`` order, then the unlisted ones.
FLAGS: Final[tuple[FlagSpec, ...]] = _specs()
FLAGS_BY_NAME: Final[dict[str, FlagSpec]] = {s.name: s for s in FLAGS}
#: The flags minietcd acts on (``implemented=True`` in the table).
IMPLEMENTED_FLAGS: Final[frozenset[str]] = frozenset(s.name for s in FLAGS if s.implemented)
#: Every flag's typed default, by attribute name.
DEFAULTS: Final[dict[str, Any]] = {s.attr: s.default for s in FLAGS if s.kind is not Kind.IGNORED}
