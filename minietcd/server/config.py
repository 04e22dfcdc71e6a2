"""Server configuration: every etcd 3.4 flag, parsed and validated the way etcd 3.4.23 does.

minietcd is a drop-in ``etcd`` binary, so its command line is etcd's: the same flag names with
Go ``flag`` package syntax, the same ``ETCD_*`` environment variables, the same
``--config-file`` YAML keys, the same defaults and, where etcd rejects a configuration, the same
error text. The reference is etcd's source (etcdmain/config.go, etcdmain/help.go,
embed/config.go, pkg/flags) and the behaviour of the real binary; the compat test suite runs
both side by side.

Public API:

* :func:`parse_config` ``(argv, env) -> Config``; raises :class:`ConfigError` (or its
  :class:`UsageError` subclass for Go-flag syntax errors, after which etcd prints
  :data:`USAGE_LINE` to stderr and exits 2; other errors exit 1).
* :class:`Config`: one typed, immutable field per flag (``--initial-cluster-token`` is
  ``initial_cluster_token``), plus ``help``/``version`` requests, what the user set, and the
  warnings/notices etcd would log while parsing.
* :data:`FLAGS` / :data:`FLAGS_BY_NAME`: the flag registry; :data:`IMPLEMENTED_FLAGS`: the
  flags minietcd acts on (one place to update); ``Config.unimplemented_in_use()``.
* :func:`help_text`, :data:`USAGE_LINE`, :func:`version_text`: what ``--help``/``--version`` print.

Checks that etcd performs only when bootstrapping a member without a WAL (``--initial-cluster``
contains this member, advertise URLs match it, no duplicate URLs) are *not* done by
:func:`parse_config`, because etcd ignores those flags once a member has data. The server calls
``Config.verify_bootstrap()`` (``--initial-cluster-state new``) or
``Config.verify_join_existing()`` (``existing``) when the data dir has no WAL yet.
"""

from __future__ import annotations

import enum
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from typing import Any, Final

from minietcd import ETCD_API_VERSION, __version__
from minietcd.errors import ConfigError
from minietcd.server import ids
from minietcd.server.urls import (
    URL,
    check_bind_urls,
    check_host_urls,
    detect_default_host,
    go_quote,
    go_quote_list,
    parse_urls,
    parse_urls_map,
    resolve_tcp_host,
    resolve_url,
    split_host_port,
    urls_map_string,
)

__all__ = [
    "FLAGS",
    "FLAGS_BY_NAME",
    "IMPLEMENTED_FLAGS",
    "USAGE_LINE",
    "Config",
    "FlagSpec",
    "Kind",
    "UsageError",
    "help_text",
    "parse_config",
    "version_text",
]


# --- which flags minietcd acts on ---------------------------------------------------------------

#: Flags minietcd implements. Every other etcd 3.4 flag is accepted and validated as etcd does,
#: then ignored with a warning (``Config.unimplemented_in_use``). Add a name here when the
#: server starts honouring it; nothing else needs to change.
IMPLEMENTED_FLAGS: Final[frozenset[str]] = frozenset(
    {
        "name",
        "data-dir",
        "wal-dir",
        "listen-client-urls",
        "advertise-client-urls",
        "listen-peer-urls",
        "initial-advertise-peer-urls",
        "initial-cluster",
        "initial-cluster-state",
        "initial-cluster-token",
        "heartbeat-interval",
        "election-timeout",
        "snapshot-count",
        "quota-backend-bytes",
        "max-request-bytes",
        "max-txn-ops",
        "listen-metrics-urls",
        "strict-reconfig-check",
        "pre-vote",
        "auto-tls",
        "peer-auto-tls",
        "cert-file",
        "key-file",
        "trusted-ca-file",
        "client-cert-auth",
        "peer-cert-file",
        "peer-key-file",
        "peer-trusted-ca-file",
        "peer-client-cert-auth",
        "discovery",
        "discovery-fallback",
        "discovery-proxy",
        "discovery-srv",
        "discovery-srv-name",
        "discovery-endpoints",
        "discovery-token",
        "discovery-dial-timeout",
        "discovery-request-timeout",
        "log-level",
        "logger",
        "version",
        "config-file",
    }
)


class UsageError(ConfigError):
    """A Go ``flag`` package error (unknown flag, bad value, missing argument).

    etcd prints the message and :data:`USAGE_LINE` to stderr and exits with status 2 for these;
    every other :class:`ConfigError` exits with status 1.
    """

    exit_code = 2


# --- etcd's constants ----------------------------------------------------------------------------

DEFAULT_NAME: Final = "default"
DEFAULT_LISTEN_PEER_URL: Final = URL("http", "localhost:2380")
DEFAULT_LISTEN_CLIENT_URL: Final = URL("http", "localhost:2379")
DEFAULT_INITIAL_CLUSTER: Final = "default=http://localhost:2380"
CLUSTER_STATE_NEW: Final = "new"
CLUSTER_STATE_EXISTING: Final = "existing"
MAX_ELECTION_MS: Final = 50000
#: ``--quota-backend-bytes 0`` means this (etcdserver/quota.go DefaultQuotaBytes, 2 GiB).
DEFAULT_QUOTA_BYTES: Final = 2 * 1024 * 1024 * 1024
#: Above this etcd warns (MaxQuotaBytes, 8 GiB).
MAX_QUOTA_BYTES: Final = 8 * 1024 * 1024 * 1024
LOG_LEVELS: Final = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
LOG_OUTPUT_DEFAULT: Final = "default"
LOG_OUTPUT_JOURNAL: Final = "systemd/journal"

ERR_CONFLICT_BOOTSTRAP: Final = (
    "multiple discovery or bootstrap flags are set. "
    'Choose one of "initial-cluster", "discovery" or "discovery-srv"'
)
ERR_UNSET_ADVERTISE_CLIENT_URLS: Final = (
    "--advertise-client-urls is required when --listen-client-urls is set explicitly"
)

#: etcd's ``fs.Usage`` text, printed to stderr on ``--help`` and on flag syntax errors.
USAGE_LINE: Final = """Usage:

  etcd [flags]
    Start an etcd server.

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, \
other command line flags and environment variables will be ignored.

  etcd gateway
    Run the stateless pass-through etcd TCP connection forwarding proxy.

  etcd grpc-proxy
    Run the stateless etcd v3 gRPC L7 reverse proxy.
"""


# --- the configuration ---------------------------------------------------------------------------


# Duration defaults (named so the dataclass defaults are constants, not calls).
_NO_TIME: Final = timedelta(0)
_2S: Final = timedelta(seconds=2)
_5S: Final = timedelta(seconds=5)
_20S: Final = timedelta(seconds=20)
_2H: Final = timedelta(hours=2)
_100MS: Final = timedelta(milliseconds=100)


@dataclass(frozen=True, slots=True)
class Config:
    """One field per etcd flag (dashes become underscores), defaults as ``etcd`` with no flags.

    Durations are :class:`~datetime.timedelta` (etcd's Go durations, to the microsecond);
    URL lists are tuples of :class:`~minietcd.server.urls.URL`, sorted as etcd sorts them.
    ``Config()`` equals ``parse_config([], {})`` apart from the parse-time messages.
    """

    # Member
    name: str = DEFAULT_NAME
    #: Resolved: etcd's empty default becomes "<name>.etcd" after parsing.
    data_dir: str = "default.etcd"
    wal_dir: str = ""
    snapshot_count: int = 100000
    heartbeat_interval: int = 100
    election_timeout: int = 1000
    initial_election_tick_advance: bool = True
    listen_peer_urls: tuple[URL, ...] = (DEFAULT_LISTEN_PEER_URL,)
    listen_client_urls: tuple[URL, ...] = (DEFAULT_LISTEN_CLIENT_URL,)
    max_snapshots: int = 5
    max_wals: int = 5
    #: 0 means DEFAULT_QUOTA_BYTES, negative disables the quota; see ``backend_quota_bytes``.
    quota_backend_bytes: int = 0
    backend_batch_interval: timedelta = _NO_TIME
    backend_batch_limit: int = 0
    max_txn_ops: int = 128
    max_request_bytes: int = 1572864
    max_concurrent_streams: int = 2**32 - 1
    grpc_keepalive_min_time: timedelta = _5S
    grpc_keepalive_interval: timedelta = _2H
    grpc_keepalive_timeout: timedelta = _20S
    # Clustering
    initial_advertise_peer_urls: tuple[URL, ...] = (DEFAULT_LISTEN_PEER_URL,)
    #: Derived from name + initial-advertise-peer-urls when only --name is given, as etcd does.
    initial_cluster: str = DEFAULT_INITIAL_CLUSTER
    initial_cluster_state: str = CLUSTER_STATE_NEW
    initial_cluster_token: str = "etcd-cluster"
    #: Empty only if validation already failed; kept as a tuple for uniformity.
    advertise_client_urls: tuple[URL, ...] = (DEFAULT_LISTEN_CLIENT_URL,)
    discovery: str = ""
    discovery_fallback: str = "proxy"
    discovery_proxy: str = ""
    discovery_srv: str = ""
    discovery_srv_name: str = ""
    #: etcd 3.6's v3 discovery (``--discovery-endpoints`` / ``--discovery-token``); etcd 3.4 has
    #: only the v2 ``--discovery`` URL. See minietcd/server/discovery.py and docs/discovery.md.
    discovery_endpoints: tuple[str, ...] = ()
    discovery_token: str = ""
    discovery_dial_timeout: timedelta = _2S
    discovery_request_timeout: timedelta = _5S
    strict_reconfig_check: bool = True
    pre_vote: bool = False
    auto_compaction_retention: str = "0"
    #: "periodic", "revision", or "" (only from a config file; see ``auto_compaction``).
    auto_compaction_mode: str = "periodic"
    enable_v2: bool = False
    # Security
    cert_file: str = ""
    key_file: str = ""
    client_cert_auth: bool = False
    client_crl_file: str = ""
    client_cert_allowed_hostname: str = ""
    trusted_ca_file: str = ""
    auto_tls: bool = False
    peer_cert_file: str = ""
    peer_key_file: str = ""
    peer_client_cert_auth: bool = False
    peer_trusted_ca_file: str = ""
    peer_cert_allowed_cn: str = ""
    peer_cert_allowed_hostname: str = ""
    peer_auto_tls: bool = False
    peer_crl_file: str = ""
    cipher_suites: tuple[str, ...] = ()
    cors: tuple[str, ...] = ("*",)
    host_whitelist: tuple[str, ...] = ("*",)
    # Auth
    auth_token: str = "simple"
    bcrypt_cost: int = 10
    auth_token_ttl: int = 300
    # Profiling and monitoring
    enable_pprof: bool = False
    metrics: str = "basic"
    listen_metrics_urls: tuple[URL, ...] = ()
    # Logging
    logger: str = "capnslog"
    log_outputs: tuple[str, ...] = (LOG_OUTPUT_DEFAULT,)
    #: Deprecated spelling of log-outputs; reconciled with it as etcd 3.4 does.
    log_output: tuple[str, ...] = (LOG_OUTPUT_DEFAULT,)
    log_level: str = "info"
    debug: bool = False
    log_package_levels: str = ""
    # v2 proxy
    proxy: str = "off"
    proxy_failure_wait: int = 5000
    proxy_refresh_interval: int = 30000
    proxy_dial_timeout: int = 1000
    proxy_write_timeout: int = 5000
    proxy_read_timeout: int = 0
    # Experimental. etcd's flag defaults, not its help text: "" / 0 mean "etcd's built-in
    # value" (array freelist, 1000-revision batches, 10m progress notify).
    experimental_initial_corrupt_check: bool = False
    experimental_corrupt_check_time: timedelta = _NO_TIME
    experimental_enable_v2v3: str = ""
    experimental_backend_bbolt_freelist_type: str = ""
    experimental_enable_lease_checkpoint: bool = False
    experimental_enable_lease_checkpoint_persist: bool = False
    experimental_compaction_batch_limit: int = 0
    experimental_peer_skip_client_san_verification: bool = False
    experimental_watch_progress_notify_interval: timedelta = _NO_TIME
    experimental_warning_apply_duration: timedelta = _100MS
    # Unsafe
    force_new_cluster: bool = False
    unsafe_no_fsync: bool = False
    # Registered by etcd but absent from its --help.
    enable_grpc_gateway: bool = True
    version: bool = False
    config_file: str = ""

    # --- not flags: what parsing found -----------------------------------------------------
    #: ``-h``/``--help`` was given: print ``help_text()`` and exit 0; nothing else was checked.
    help: bool = False
    #: "flags" (command line + environment) or "file" (--config-file; everything else ignored).
    source: str = "flags"
    #: Flags the user set: on the command line, through ETCD_* variables, or as file keys.
    explicitly_set: frozenset[str] = frozenset()
    #: ETCD_* variables that set a flag (etcd logs "recognized and used environment variable").
    env_used: tuple[tuple[str, str], ...] = ()
    #: What etcd logs at warning level while parsing, in its words.
    warnings: tuple[str, ...] = ()
    #: What etcd logs at info/notice level while parsing.
    notices: tuple[str, ...] = ()

    # --- derived values ---------------------------------------------------------------------

    @property
    def is_new_cluster(self) -> bool:
        return self.initial_cluster_state == CLUSTER_STATE_NEW

    @property
    def election_ticks(self) -> int:
        """Raft election timeout in heartbeat ticks (etcd: ElectionMs / TickMs)."""
        return self.election_timeout // self.heartbeat_interval

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def wal_path(self) -> str:
        """Where the WAL lives: ``--wal-dir`` if given, else ``<data-dir>/member/wal``."""
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def snap_path(self) -> str:
        return os.path.join(self.member_dir, "snap")

    @property
    def backend_quota_bytes(self) -> int | None:
        """The effective backend quota; ``None`` when disabled (negative flag value)."""
        if self.quota_backend_bytes < 0:
            return None
        return self.quota_backend_bytes or DEFAULT_QUOTA_BYTES

    def auto_compaction(self) -> tuple[str, timedelta | int] | None:
        """``(mode, retention)`` for the compactor, or ``None`` when auto compaction is off.

        Periodic retention is a duration ("5m", or a bare number of hours); revision retention
        is a revision count. Mirrors embed.parseCompactionRetention, quirks included: a
        duration with ``revision`` mode counts nanoseconds, and a config file that sets a
        retention but no mode gets etcd's "unsupported compaction mode" error.
        """
        mode, text = self.auto_compaction_mode, self.auto_compaction_retention or "0"
        try:
            hours = _go_atoi(text)
        except ValueError:
            hours = -1
        ret_ns: int
        if hours >= 0:
            if mode == "revision":
                if hours == 0:
                    return None
                return (mode, hours)
            ret_ns = hours * 3600 * 10**9 if mode == "periodic" else 0
        else:
            try:
                ret_ns = _go_parse_duration(text)
            except ValueError as e:
                raise ConfigError(f"error parsing CompactionRetention: {e}") from None
        if ret_ns == 0:
            return None
        if mode == "periodic":
            return (mode, _ns_to_td(ret_ns))
        if mode == "revision":
            return (mode, ret_ns)
        raise ConfigError(f"unsupported compaction mode {mode}")

    # --- what is implemented ----------------------------------------------------------------

    def unimplemented_in_use(self) -> list[str]:
        """Flags the user set to a non-default value that minietcd does not act on (sorted).

        Setting an unimplemented flag to its default asks for nothing minietcd does not do,
        so it is not reported. Flags etcd itself ignores (obsolete v2 flags) are not
        reported either: etcd already warns about those, see ``warnings``.
        """
        out = []
        for name in sorted(self.explicitly_set):
            spec = FLAGS_BY_NAME.get(name)
            if spec is None or spec.kind is Kind.IGNORED or name in IMPLEMENTED_FLAGS:
                continue
            if getattr(self, spec.attr) != _DEFAULTS[spec.attr]:
                out.append(name)
        return out

    def unimplemented_warnings(self) -> list[str]:
        """One log line per ``unimplemented_in_use()`` flag."""
        return [
            f"flag --{n} is accepted but not implemented by minietcd yet; ignoring"
            for n in self.unimplemented_in_use()
        ]

    # --- bootstrap: initial cluster, IDs ----------------------------------------------------

    def initial_cluster_map(self) -> dict[str, list[URL]]:
        """``--initial-cluster`` as ``{name: [peer URLs sorted]}`` (``types.NewURLsMap``)."""
        try:
            return parse_urls_map(self.initial_cluster)
        except ConfigError as e:
            raise ConfigError(f"error setting up initial cluster: {e}") from None

    def peer_urls_map_and_token(self) -> tuple[dict[str, list[URL]], str]:
        """The bootstrap members and the token their IDs are derived from.

        With ``--discovery`` etcd starts from a one-member map of this member's advertised
        peer URLs and uses the discovery URL as the token (embed.PeerURLsMapAndToken); with
        etcd 3.6's v3 discovery (``--discovery-endpoints``) the token is ``--discovery-token``.
        """
        if self.discovery:
            return {self.name: list(self.initial_advertise_peer_urls)}, self.discovery
        if self.discovery_endpoints:
            return {self.name: list(self.initial_advertise_peer_urls)}, self.discovery_token
        if self.discovery_srv:
            # The caller resolves the SRV records first (bootstrap.resolve_srv_cluster).
            raise ConfigError("error setting up initial cluster: --discovery-srv records not resolved yet")
        return self.initial_cluster_map(), self.initial_cluster_token

    def initial_member_ids(self) -> dict[str, int]:
        """``{name: member ID}`` for the bootstrap members (membership.NewClusterFromURLsMap)."""
        urls_map, token = self.peer_urls_map_and_token()
        out: dict[str, int] = {}
        seen: dict[int, str] = {}
        for name, urls in urls_map.items():
            mid = ids.member_id(urls, token)
            if mid in seen:
                raise ConfigError(
                    f"member exists with identical ID {ids.format_id(mid)} "
                    f"(members {seen[mid]!r} and {name!r} have the same peer URLs)"
                )
            if mid == 0:
                raise ConfigError("cannot use 0 as member id")
            seen[mid] = name
            out[name] = mid
        return out

    def member_id(self) -> int:
        """This member's ID when it bootstraps (it must be in the initial cluster)."""
        member_ids = self.initial_member_ids()
        if self.name not in member_ids:
            raise ConfigError(
                f"couldn't find local name {go_quote(self.name)} in the initial cluster "
                "configuration"
            )
        return member_ids[self.name]

    def initial_cluster_id(self) -> int:
        """The cluster ID a new cluster with these bootstrap members gets."""
        return ids.cluster_id(self.initial_member_ids().values())

    def verify_bootstrap(
        self, resolver: Callable[[str, str], str] = resolve_tcp_host
    ) -> None:
        """etcd's checks before bootstrapping a new cluster (ServerConfig.VerifyBootstrap).

        Call when ``--initial-cluster-state new`` and the member has no WAL yet. ``resolver``
        turns a DNS host into ``ip:port``; it is only used when advertised and initial-cluster
        URLs differ as strings.
        """
        urls_map, _ = self.peer_urls_map_and_token()
        self._has_local_member(urls_map)
        self._advertise_matches_cluster(urls_map, resolver)
        if _has_duplicate_url(urls_map):
            raise ConfigError(f"initial cluster {urls_map_string(urls_map)} has duplicate url")
        if urls_map_string(urls_map) == "" and not (self.discovery or self.discovery_endpoints):
            raise ConfigError("initial cluster unset and no discovery URL found")

    def verify_join_existing(self) -> None:
        """etcd's checks before joining an existing cluster (``--initial-cluster-state
        existing``, no WAL yet): ServerConfig.VerifyJoinExisting."""
        urls_map, _ = self.peer_urls_map_and_token()
        self._has_local_member(urls_map)
        if _has_duplicate_url(urls_map):
            raise ConfigError(f"initial cluster {urls_map_string(urls_map)} has duplicate url")
        if self.discovery or self.discovery_endpoints:
            raise ConfigError(
                "discovery URL should not be set when joining existing initial cluster"
            )

    def _has_local_member(self, urls_map: Mapping[str, list[URL]]) -> None:
        if self.name not in urls_map:
            raise ConfigError(
                f"couldn't find local name {go_quote(self.name)} in the initial cluster "
                "configuration"
            )

    def _advertise_matches_cluster(
        self, urls_map: Mapping[str, list[URL]], resolver: Callable[[str, str], str]
    ) -> None:
        cluster_urls = sorted(urls_map[self.name], key=str)
        adv_urls = sorted(self.initial_advertise_peer_urls, key=str)
        ok, why = _urls_equal(adv_urls, cluster_urls, resolver)
        if ok:
            return
        adv_strs = [str(u) for u in adv_urls]
        adv_set, init_set = set(adv_strs), {str(u) for u in cluster_urls}
        # etcd iterates Go maps here (random order); sorted keeps our message stable.
        missing = sorted(init_set - adv_set)
        if missing:
            mstr = ",".join(f"{self.name}={u}" for u in missing)
            raise ConfigError(
                f"--initial-cluster has {mstr} but missing from "
                f"--initial-advertise-peer-urls={','.join(adv_strs)} ({why})"
            )
        # etcd prints the advertised URLs as "--initial-cluster=" here; mirrored verbatim.
        umap = urls_map_string({self.name: adv_urls})
        extra = sorted(adv_set - init_set)
        if extra:
            raise ConfigError(
                f"--initial-advertise-peer-urls has {','.join(extra)} but missing from "
                f"--initial-cluster={umap}"
            )
        raise ConfigError(
            f"failed to resolve {','.join(adv_strs)} to match --initial-cluster={umap} ({why})"
        )


# The dataclass defaults, by attribute: the single source of every flag's default value.
_DEFAULTS: Final[dict[str, Any]] = {
    f.name: f.default for f in fields(Config) if f.default is not MISSING
}


def _urls_equal(
    a: Sequence[URL], b: Sequence[URL], resolver: Callable[[str, str], str]
) -> tuple[bool, str]:
    """netutil.URLStringsEqual: equal as strings, else equal after resolving DNS names."""
    if len(a) != len(b):
        return False, (
            f"len({go_quote_list(str(u) for u in a)}) != len({go_quote_list(str(u) for u in b)})"
        )
    if [str(u) for u in a] == [str(u) for u in b]:
        return True, ""
    try:
        ra = sorted(_resolve_all(a, resolver), key=str)
        rb = sorted(_resolve_all(b, resolver), key=str)
    except ConfigError as e:
        return False, str(e)
    for x, y in zip(ra, rb, strict=True):
        if str(x) != str(y):
            return False, f"resolved urls: {go_quote(str(x))} != {go_quote(str(y))}"
    return True, ""


def _resolve_all(urls: Iterable[URL], resolver: Callable[[str, str], str]) -> list[URL]:
    out = []
    for u in urls:
        try:
            out.append(resolve_url(u, resolver))
        except ConfigError as e:
            raise ConfigError(f"failed to resolve {go_quote(str(u))} ({e})") from None
    return out


def _has_duplicate_url(urls_map: Mapping[str, list[URL]]) -> bool:
    seen: set[str] = set()
    for urls in urls_map.values():
        for u in urls:
            if str(u) in seen:
                return True
            seen.add(str(u))
    return False


# --- the flag registry ---------------------------------------------------------------------------


class Kind(enum.Enum):
    """How a flag's text becomes a value (the Go ``flag.Value`` etcd registers for it)."""

    STRING = "string"
    BOOL = "bool"
    UINT = "uint"  # Go uint: 64-bit on the platforms etcd supports
    UINT32 = "uint32"  # pkg/flags uint32Value (its own error text)
    UINT64 = "uint64"
    INT = "int"
    INT64 = "int64"
    DURATION = "time.Duration"
    URLS = "urls"  # pkg/flags UniqueURLs with "" as the allowed exception
    CORS = "cors"  # UniqueURLs with "*" as the allowed exception
    CHOICE = "choice"  # pkg/flags SelectiveStringValue
    STRINGS = "strings"  # pkg/flags StringsValue: split on commas, kept in order
    UNIQUE_STRINGS = "unique-strings"  # pkg/flags UniqueStringsValue: a sorted set
    IGNORED = "ignored"  # obsolete v0.4 flags: accepted, warned about, ignored

    @property
    def is_bool_flag(self) -> bool:
        """Go bool flags never consume the next argument: ``--flag false`` is an error."""
        return self in (Kind.BOOL, Kind.IGNORED)


_SAME: Final = "\0same"  # config-file key equals the flag name


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One etcd flag: how to parse it, how ``--help`` shows it, its config-file key."""

    name: str
    kind: Kind
    #: --help section header; None for flags etcd registers but does not list.
    section: str | None = None
    #: The default as --help prints it (with etcd's quotes).
    help_default: str = ""
    help: tuple[str, ...] = ()
    #: Config-file key ("a.b" for nested); None when the YAML cannot set it.
    yaml: str | None = _SAME
    choices: tuple[str, ...] = ()

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def yaml_key(self) -> str | None:
        return self.name if self.yaml == _SAME else self.yaml

    @property
    def implemented(self) -> bool:
        return self.name in IMPLEMENTED_FLAGS

    @property
    def env_var(self) -> str:
        return _flag_to_env(self.name)


def _f(
    name: str,
    kind: Kind,
    section: str | None = None,
    help_default: str = "",
    *help: str,
    yaml: str | None = _SAME,
    choices: tuple[str, ...] = (),
) -> FlagSpec:
    return FlagSpec(name, kind, section, help_default, help, yaml, choices)


_MEMBER = "Member:"
_CLUSTERING = "Clustering:"
_SECURITY = "Security:"
_AUTH = "Auth:"
_MONITORING = "Profiling and Monitoring:"
_LOGGING = "Logging:"
_PROXY = "v2 Proxy (to be deprecated in v4):"
_EXPERIMENTAL = "Experimental feature:"
_UNSAFE = "Unsafe feature:"
_DEPRECATED = "TO BE DEPRECATED:"
_CLIENT_TLS = "client-transport-security."
_PEER_TLS = "peer-transport-security."

_S, _B, _U, _D = Kind.STRING, Kind.BOOL, Kind.UINT, Kind.DURATION

#: Every flag etcd 3.4.23 registers, in ``etcd --help`` order, then the unlisted ones.
#: Help texts are etcd's, verbatim (help.go), so ``help_text()`` is byte-identical to etcd's.
FLAGS: Final[tuple[FlagSpec, ...]] = (
    _f("name", _S, _MEMBER, "'default'", "Human-readable name for this member."),
    _f("data-dir", _S, _MEMBER, "'${name}.etcd'", "Path to the data directory."),
    _f("wal-dir", _S, _MEMBER, "''", "Path to the dedicated wal directory."),
    _f("snapshot-count", Kind.UINT64, _MEMBER, "'100000'",
       "Number of committed transactions to trigger a snapshot to disk."),
    _f("heartbeat-interval", _U, _MEMBER, "'100'",
       "Time (in milliseconds) of a heartbeat interval."),
    _f("election-timeout", _U, _MEMBER, "'1000'",
       "Time (in milliseconds) for an election to timeout. See tuning documentation for details."),
    _f("initial-election-tick-advance", _B, _MEMBER, "'true'",
       "Whether to fast-forward initial election ticks on boot for faster election."),
    _f("listen-peer-urls", Kind.URLS, _MEMBER, "'http://localhost:2380'",
       "List of URLs to listen on for peer traffic."),
    _f("listen-client-urls", Kind.URLS, _MEMBER, "'http://localhost:2379'",
       "List of URLs to listen on for client traffic."),
    _f("max-snapshots", _U, _MEMBER, "'5'",
       "Maximum number of snapshot files to retain (0 is unlimited)."),
    _f("max-wals", _U, _MEMBER, "'5'", "Maximum number of wal files to retain (0 is unlimited)."),
    _f("quota-backend-bytes", Kind.INT64, _MEMBER, "'0'",
       "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota)."),
    _f("backend-batch-interval", _D, _MEMBER, "''",
       "BackendBatchInterval is the maximum time before commit the backend transaction."),
    _f("backend-batch-limit", Kind.INT, _MEMBER, "'0'",
       "BackendBatchLimit is the maximum operations before commit the backend transaction."),
    _f("max-txn-ops", _U, _MEMBER, "'128'",
       "Maximum number of operations permitted in a transaction."),
    _f("max-request-bytes", _U, _MEMBER, "'1572864'",
       "Maximum client request size in bytes the server will accept."),
    _f("max-concurrent-streams", Kind.UINT32, _MEMBER, "'math.MaxUint32'",
       "Maximum concurrent streams that each client can open at a time."),
    _f("grpc-keepalive-min-time", _D, _MEMBER, "'5s'",
       "Minimum duration interval that a client should wait before pinging server."),
    _f("grpc-keepalive-interval", _D, _MEMBER, "'2h'",
       "Frequency duration of server-to-client ping to check if a connection is alive "
       "(0 to disable)."),
    _f("grpc-keepalive-timeout", _D, _MEMBER, "'20s'",
       "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    _f("initial-advertise-peer-urls", Kind.URLS, _CLUSTERING, "'http://localhost:2380'",
       "List of this member's peer URLs to advertise to the rest of the cluster."),
    _f("initial-cluster", _S, _CLUSTERING, "'default=http://localhost:2380'",
       "Initial cluster configuration for bootstrapping."),
    _f("initial-cluster-state", Kind.CHOICE, _CLUSTERING, "'new'",
       "Initial cluster state ('new' or 'existing').",
       choices=(CLUSTER_STATE_NEW, CLUSTER_STATE_EXISTING)),
    _f("initial-cluster-token", _S, _CLUSTERING, "'etcd-cluster'",
       "Initial cluster token for the etcd cluster during bootstrap.",
       "Specifying this can protect you from unintended cross-cluster interaction when running "
       "multiple clusters."),
    _f("advertise-client-urls", Kind.URLS, _CLUSTERING, "'http://localhost:2379'",
       "List of this member's client URLs to advertise to the public.",
       "The client URLs advertised should be accessible to machines that talk to etcd cluster. "
       "etcd client libraries parse these URLs to connect to the cluster."),
    _f("discovery", _S, _CLUSTERING, "''", "Discovery URL used to bootstrap the cluster."),
    _f("discovery-fallback", Kind.CHOICE, _CLUSTERING, "'proxy'",
       "Expected behavior ('exit' or 'proxy') when discovery services fails.",
       '"proxy" supports v2 API only.', choices=("proxy", "exit")),
    _f("discovery-proxy", _S, _CLUSTERING, "''",
       "HTTP proxy to use for traffic to discovery service."),
    _f("discovery-srv", _S, _CLUSTERING, "''", "DNS srv domain used to bootstrap the cluster."),
    _f("discovery-srv-name", _S, _CLUSTERING, "''",
       "Suffix to the dns srv name queried when bootstrapping."),
    _f("strict-reconfig-check", _B, _CLUSTERING, "'true'",
       "Reject reconfiguration requests that would cause quorum loss."),
    _f("pre-vote", _B, _CLUSTERING, "'false'", "Enable to run an additional Raft election phase."),
    _f("auto-compaction-retention", _S, _CLUSTERING, "'0'",
       "Auto compaction retention length. 0 means disable auto compaction."),
    _f("auto-compaction-mode", _S, _CLUSTERING, "'periodic'",
       "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration "
       "based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' "
       "for revision number based retention."),
    _f("enable-v2", _B, _CLUSTERING, "'false'", "Accept etcd V2 client requests."),
    _f("cert-file", _S, _SECURITY, "''", "Path to the client server TLS cert file.",
       yaml=_CLIENT_TLS + "cert-file"),
    _f("key-file", _S, _SECURITY, "''", "Path to the client server TLS key file.",
       yaml=_CLIENT_TLS + "key-file"),
    _f("client-cert-auth", _B, _SECURITY, "'false'", "Enable client cert authentication.",
       yaml=_CLIENT_TLS + "client-cert-auth"),
    _f("client-crl-file", _S, _SECURITY, "''",
       "Path to the client certificate revocation list file.", yaml=None),
    _f("client-cert-allowed-hostname", _S, _SECURITY, "''",
       "Allowed TLS hostname for client cert authentication.", yaml=None),
    _f("trusted-ca-file", _S, _SECURITY, "''",
       "Path to the client server TLS trusted CA cert file.",
       yaml=_CLIENT_TLS + "trusted-ca-file"),
    _f("auto-tls", _B, _SECURITY, "'false'", "Client TLS using generated certificates.",
       yaml=_CLIENT_TLS + "auto-tls"),
    _f("peer-cert-file", _S, _SECURITY, "''", "Path to the peer server TLS cert file.",
       yaml=_PEER_TLS + "cert-file"),
    _f("peer-key-file", _S, _SECURITY, "''", "Path to the peer server TLS key file.",
       yaml=_PEER_TLS + "key-file"),
    _f("peer-client-cert-auth", _B, _SECURITY, "'false'",
       "Enable peer client cert authentication.", yaml=_PEER_TLS + "client-cert-auth"),
    _f("peer-trusted-ca-file", _S, _SECURITY, "''",
       "Path to the peer server TLS trusted CA file.", yaml=_PEER_TLS + "trusted-ca-file"),
    _f("peer-cert-allowed-cn", _S, _SECURITY, "''",
       "Required CN for client certs connecting to the peer endpoint.", yaml=None),
    _f("peer-cert-allowed-hostname", _S, _SECURITY, "''",
       "Allowed TLS hostname for inter peer authentication.", yaml=None),
    _f("peer-auto-tls", _B, _SECURITY, "'false'",
       "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are "
       "not provided.", yaml=_PEER_TLS + "auto-tls"),
    _f("peer-crl-file", _S, _SECURITY, "''",
       "Path to the peer certificate revocation list file.", yaml=None),
    _f("cipher-suites", Kind.STRINGS, _SECURITY, "''",
       "Comma-separated list of supported TLS cipher suites between client/server and peers "
       "(empty will be auto-populated by Go)."),
    _f("cors", Kind.CORS, _SECURITY, "'*'",
       "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, "
       "(empty or * means allow all)."),
    _f("host-whitelist", Kind.UNIQUE_STRINGS, _SECURITY, "'*'",
       "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * "
       "means allow all)."),
    _f("auth-token", _S, _AUTH, "'simple'",
       "Specify a v3 authentication token type and its options ('simple' or 'jwt')."),
    _f("bcrypt-cost", _U, _AUTH, "10",
       "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. "
       "Valid values are between 4 and 31."),
    _f("auth-token-ttl", _U, _AUTH, "300", "Time (in seconds) of the auth-token-ttl."),
    _f("enable-pprof", _B, _MONITORING, "'false'",
       'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"'),
    _f("metrics", _S, _MONITORING, "'basic'",
       "Set level of detail for exported metrics, specify 'extensive' to include histogram "
       "metrics."),
    _f("listen-metrics-urls", Kind.URLS, _MONITORING, "''",
       "List of URLs to listen on for the metrics and health endpoints."),
    _f("logger", _S, _LOGGING, "'capnslog'",
       "Specify 'zap' for structured logging or 'capnslog'. [WARN] 'capnslog' will be "
       "deprecated in v3.5."),
    _f("log-outputs", Kind.UNIQUE_STRINGS, _LOGGING, "'default'",
       "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, "
       "or list of comma separated output targets."),
    _f("log-level", _S, _LOGGING, "'info'",
       "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    _f("proxy", Kind.CHOICE, _PROXY, "'off'", "Proxy mode setting ('off', 'readonly' or 'on').",
       choices=("off", "readonly", "on")),
    _f("proxy-failure-wait", _U, _PROXY, "5000",
       "Time (in milliseconds) an endpoint will be held in a failed state."),
    _f("proxy-refresh-interval", _U, _PROXY, "30000",
       "Time (in milliseconds) of the endpoints refresh interval."),
    _f("proxy-dial-timeout", _U, _PROXY, "1000", "Time (in milliseconds) for a dial to timeout."),
    _f("proxy-write-timeout", _U, _PROXY, "5000",
       "Time (in milliseconds) for a write to timeout."),
    _f("proxy-read-timeout", _U, _PROXY, "0", "Time (in milliseconds) for a read to timeout."),
    _f("experimental-initial-corrupt-check", _B, _EXPERIMENTAL, "'false'",
       "Enable to check data corruption before serving any client/peer traffic."),
    _f("experimental-corrupt-check-time", _D, _EXPERIMENTAL, "'0s'",
       "Duration of time between cluster corruption check passes."),
    _f("experimental-enable-v2v3", _S, _EXPERIMENTAL, "''",
       "Serve v2 requests through the v3 backend under a given prefix."),
    _f("experimental-backend-bbolt-freelist-type", _S, _EXPERIMENTAL, "'array'",
       "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend "
       "uses(array and map are supported types)."),
    _f("experimental-enable-lease-checkpoint", _B, _EXPERIMENTAL, "'false'",
       "ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL "
       "to prevent indefinite auto-renewal of long lived leases."),
    _f("experimental-compaction-batch-limit", Kind.INT, _EXPERIMENTAL, "1000",
       "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction "
       "batch."),
    _f("experimental-peer-skip-client-san-verification", _B, _EXPERIMENTAL, "'false'",
       "Skip verification of SAN field in client certificate for peer connections.", yaml=None),
    _f("experimental-watch-progress-notify-interval", _D, _EXPERIMENTAL, "'10m'",
       "Duration of periodical watch progress notification."),
    _f("experimental-warning-apply-duration", _D, _EXPERIMENTAL, "'100ms'",
       "Warning is generated if requests take more than this duration."),
    _f("force-new-cluster", _B, _UNSAFE, "'false'", "Force to create a new one-member cluster."),
    _f("debug", _B, _DEPRECATED, "'false'",
       "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5. Use "
       "'--log-level=debug' instead."),
    _f("log-package-levels", _S, _DEPRECATED, "''",
       "Specify a particular log level for each etcd package (eg: "
       "'etcdmain=CRITICAL,etcdserver=DEBUG')."),
    # Registered by etcd 3.4.23, not listed by its --help.
    _f("config-file", _S, yaml=None),
    _f("version", _B, yaml=None),
    _f("log-output", Kind.UNIQUE_STRINGS),
    _f("enable-grpc-gateway", _B),
    _f("experimental-enable-lease-checkpoint-persist", _B),
    _f("unsafe-no-fsync", _B),
    # etcd 3.6's v3 discovery (server/etcdserver/api/v3discovery). Not etcd 3.4 flags: 3.4 has
    # only the v2 --discovery URL. Unlisted, so --help stays byte-identical to etcd 3.4's.
    _f("discovery-endpoints", Kind.STRINGS, None, "''",
       "V3 discovery: List of gRPC endpoints of the discovery service. (etcd 3.6; etcd 3.4 has "
       "only the v2 --discovery URL)", yaml=None),
    _f("discovery-token", _S, None, "''",
       "V3 discovery: discovery token for the etcd cluster to be bootstrapped. (etcd 3.6)",
       yaml=None),
    _f("discovery-dial-timeout", _D, None, "'2s'",
       "V3 discovery: dial timeout for client connections. (etcd 3.6)", yaml=None),
    _f("discovery-request-timeout", _D, None, "'5s'",
       "V3 discovery: timeout for discovery requests (excluding dial timeout). (etcd 3.6)",
       yaml=None),
    # Obsolete etcd 0.4 flags (etcdmain/config.go "ignored"): etcd warns and goes on.
    *(
        _f(n, Kind.IGNORED, yaml=None)
        for n in (
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
    ),
)

FLAGS_BY_NAME: Final[dict[str, FlagSpec]] = {s.name: s for s in FLAGS}

# Text etcd's help puts after a section's flags / right after its header.
_SECTION_TRAILER = {
    _UNSAFE: "\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus "
    "protocol!\n"
}
_SECTION_LEADER = {_DEPRECATED: "\n"}


def help_text() -> str:
    """What ``etcd --help`` prints to stdout (after :data:`USAGE_LINE` on stderr), byte for byte."""
    out = ["\n"]
    section: str | None = None
    for spec in FLAGS:
        if spec.section is None:
            continue
        if spec.section != section:
            if section is not None:
                out.append(_SECTION_TRAILER.get(section, "") + "\n")
            section = spec.section
            out.append(section + "\n" + _SECTION_LEADER.get(section, ""))
        out.append(f"  --{spec.name} {spec.help_default}\n")
        out.extend(f"    {line}\n" for line in spec.help)
    if section is not None:
        out.append(_SECTION_TRAILER.get(section, ""))
    return "".join(out) + "\n"


def version_text() -> str:
    """What ``--version`` prints. The first line is etcd's, which scripts and etcdctl parse."""
    return (
        f"etcd Version: {ETCD_API_VERSION}\n"
        f"Git SHA: Not provided (minietcd {__version__})\n"
        f"Go Version: none (Python {platform.python_version()})\n"
        f"Go OS/Arch: {sys.platform}/{_go_arch()}\n"
    )


def _go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}.get(
        machine, machine
    )


# --- Go value parsing ----------------------------------------------------------------------------


class _SetError(Exception):
    """A flag.Value.Set failure; the text is what Go's flag package appends after ': '."""


def _flag_to_env(name: str) -> str:
    return "ETCD_" + name.replace("-", "_").upper()


def _underscore_ok(s: str) -> bool:
    """Go strconv.underscoreOK: underscores only between digits, after a base prefix."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if ("0" <= c <= "9") or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _go_parse_uint(s: str, bits: int) -> int:
    """strconv.ParseUint(s, 0, bits). Raises ValueError("syntax") or ValueError("range")."""
    s0 = s
    if s == "":
        raise ValueError("syntax")
    base = 10
    if s[0] == "0":
        if len(s) >= 3 and s[1].lower() == "b":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1].lower() == "o":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1].lower() == "x":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    limit = (1 << bits) - 1
    n = 0
    underscores = False
    for c in s:
        if c == "_":
            underscores = True
            continue
        try:
            d = int(c, 36) if c.isascii() and c.isalnum() else 99
        except ValueError:
            d = 99
        if d >= base:
            raise ValueError("syntax")
        n = n * base + d
        if n > limit:
            raise ValueError("range")
    if underscores and not _underscore_ok(s0):
        raise ValueError("syntax")
    return n


def _go_parse_int(s: str, bits: int) -> int:
    """strconv.ParseInt(s, 0, bits)."""
    if s == "":
        raise ValueError("syntax")
    neg = False
    body = s
    if s[0] in "+-":
        neg = s[0] == "-"
        body = s[1:]
    un = _go_parse_uint(body, bits)  # may raise range for huge magnitudes, as Go does
    cutoff = 1 << (bits - 1)
    if (not neg and un >= cutoff) or (neg and un > cutoff):
        raise ValueError("range")
    return -un if neg else un


def _go_atoi(s: str) -> int:
    """strconv.Atoi: base 10 only, optional sign, no underscores."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if body == "" or not all("0" <= c <= "9" for c in body):
        raise ValueError(f'strconv.Atoi: parsing {go_quote(s)}: invalid syntax')
    return int(s)


_UNITS_NS: Final = {
    "ns": 1,
    "us": 1000,
    "\u00b5s": 1000,  # micro sign
    "\u03bcs": 1000,  # Greek mu
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _go_parse_duration(text: str) -> int:
    """time.ParseDuration, in nanoseconds. ValueError carries Go's message."""

    def invalid() -> ValueError:
        return ValueError(f"time: invalid duration {go_quote(text)}")

    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid()
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid()
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        pre = i > 0
        whole = int(s[:i]) if pre else 0
        s = s[i:]
        frac, scale, post = 0, 1, False
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            post = j > 0
            if post:
                frac, scale = int(s[:j]), 10**j
            s = s[j:]
        if not pre and not post:
            raise invalid()
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(text)}")
        unit_text, s = s[:k], s[k:]
        unit = _UNITS_NS.get(unit_text)
        if unit is None:
            raise ValueError(f"time: unknown unit {go_quote(unit_text)} in duration {go_quote(text)}")
        value = whole * unit + (int(frac * (unit / scale)) if frac else 0)
        total += value
        if total > 1 << 63:
            raise invalid()
    if not neg and total > (1 << 63) - 1:
        raise invalid()
    return -total if neg else total


def _ns_to_td(ns: int) -> timedelta:
    return timedelta(microseconds=ns // 1000)


def _go_parse_bool(s: str) -> bool:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise _SetError("parse error")


_INT_BITS: Final = {
    Kind.UINT: (False, 64),
    Kind.UINT64: (False, 64),
    Kind.INT: (True, 64),
    Kind.INT64: (True, 64),
}


def _convert(spec: FlagSpec, raw: str, current: Any) -> Any:
    """``flag.Value.Set`` for ``spec``: the new value, or _SetError with Go's error text."""
    kind = spec.kind
    if kind is Kind.STRING:
        return raw
    if kind is Kind.BOOL:
        return _go_parse_bool(raw)
    if kind in _INT_BITS:
        signed, bits = _INT_BITS[kind]
        try:
            return _go_parse_int(raw, bits) if signed else _go_parse_uint(raw, bits)
        except ValueError as e:
            # Go's flag package reduces strconv errors to these two texts.
            raise _SetError("parse error" if str(e) == "syntax" else "value out of range") from None
    if kind is Kind.UINT32:
        try:
            return _go_parse_uint(raw, 32)
        except ValueError as e:
            why = "invalid syntax" if str(e) == "syntax" else "value out of range"
            raise _SetError(f"strconv.ParseUint: parsing {go_quote(raw)}: {why}") from None
    if kind is Kind.DURATION:
        try:
            return _ns_to_td(_go_parse_duration(raw))
        except ValueError:
            raise _SetError("parse error") from None
    if kind is Kind.URLS:
        if raw == "":
            # UniqueURLs' allowed exception: recorded, but the URL list is left as it was.
            return current
        try:
            return tuple(parse_urls(raw))
        except ConfigError as e:
            raise _SetError(str(e)) from None
    if kind is Kind.CORS:
        if raw in current:
            return current
        if raw == "*":
            return tuple(sorted({*current, "*"}))
        try:
            return tuple(sorted({str(u) for u in parse_urls(raw)}))
        except ConfigError as e:
            raise _SetError(str(e)) from None
    if kind is Kind.CHOICE:
        if raw not in spec.choices:
            raise _SetError("invalid value")
        return raw
    if kind is Kind.STRINGS:
        return tuple(raw.split(","))
    if kind is Kind.UNIQUE_STRINGS:
        return tuple(sorted(set(raw.split(","))))
    raise AssertionError(f"unhandled kind {kind}")  # pragma: no cover - IGNORED handled by caller


# --- parsing -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parse:
    """Mutable state while parsing; becomes a Config at the end."""

    values: dict[str, Any]  # by flag name
    explicit: list[str] = field(default_factory=list)
    env_used: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def apply(self, spec: FlagSpec, raw: str) -> None:
        if spec.kind is Kind.IGNORED:
            self.warnings.append(f'flag "-{spec.name}" is no longer supported - ignoring.')
            return
        self.values[spec.name] = _convert(spec, raw, self.values[spec.name])

    def mark(self, name: str) -> None:
        if name not in self.explicit:
            self.explicit.append(name)


def _flag_defaults() -> dict[str, Any]:
    values = {
        s.name: _DEFAULTS[s.attr] for s in FLAGS if s.kind is not Kind.IGNORED
    }
    values["data-dir"] = ""  # etcd's flag default; "<name>.etcd" is filled in after parsing
    return values


def _parse_go_flags(argv: Sequence[str], st: _Parse) -> tuple[bool, list[str]]:
    """Go's ``flag.FlagSet.Parse``. Returns (help requested, remaining positional args)."""
    args = list(argv)
    while args:
        s = args[0]
        if len(s) < 2 or s[0] != "-":
            break
        minuses = 1
        if s[1] == "-":
            minuses = 2
            if len(s) == 2:  # "--" ends the flags
                args.pop(0)
                break
        name = s[minuses:]
        if name == "" or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {s}")
        args.pop(0)
        has_value, value = False, ""
        eq = name.find("=", 1)
        if eq > 0:
            name, value, has_value = name[:eq], name[eq + 1 :], True
        spec = FLAGS_BY_NAME.get(name)
        if spec is None:
            if name in ("help", "h"):
                return True, args
            raise UsageError(f"flag provided but not defined: -{name}")
        if spec.kind.is_bool_flag:
            try:
                st.apply(spec, value if has_value else "true")
            except _SetError as e:
                raise UsageError(
                    f"invalid boolean value {go_quote(value)} for -{name}: {e}"
                ) from None
        else:
            if not has_value and args:
                value, has_value = args.pop(0), True
            if not has_value:
                raise UsageError(f"flag needs an argument: -{name}")
            try:
                st.apply(spec, value)
            except _SetError as e:
                raise UsageError(f"invalid value {go_quote(value)} for flag -{name}: {e}") from None
        st.mark(name)
    return False, args


def _apply_env(env: Mapping[str, str], st: _Parse) -> None:
    """pkg/flags.SetFlagsFromEnv: ETCD_<FLAG> sets each flag the command line left alone."""
    on_cmdline = {_flag_to_env(n) for n in st.explicit}
    used: set[str] = set()
    last_error: str | None = None
    for spec in sorted(FLAGS, key=lambda s: s.name):  # Go's VisitAll order
        key = spec.env_var
        if key in on_cmdline:
            continue
        raw = env.get(key, "")
        if raw == "":
            continue
        used.add(key)
        try:
            if spec.name == "version":
                # etcd sets its print-version flag here but checked it already, so
                # ETCD_VERSION only has to be a valid bool (Docker images often set it to a
                # version string, which real etcd rejects just like this).
                _go_parse_bool(raw)
            else:
                st.apply(spec, raw)
        except _SetError as e:
            last_error = f"invalid value {go_quote(raw)} for {key}: {e}"
        st.env_used.append((key, raw))
        st.notices.append(f"recognized and used environment variable {key}={raw}")
        st.mark(spec.name)
    for key, raw in env.items():  # pkg/flags.verifyEnv
        if key in used:
            continue
        if key in on_cmdline:
            raise ConfigError(
                f"conflicting environment variable {go_quote(key)} is shadowed by corresponding "
                "command-line flag (either unset environment variable or disable flag)"
            )
        if key.startswith("ETCD_"):
            st.warnings.append(f"unrecognized environment variable {key}={raw}")
    if last_error is not None:
        raise ConfigError(last_error)


def parse_config(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    default_host: Callable[[], str | None] = detect_default_host,
) -> Config:
    """Parse etcd's command line (without the program name) and ``ETCD_*`` environment.

    Returns at once, unvalidated, with ``help=True`` for ``-h``/``--help`` or ``version=True``
    for ``--version``. Otherwise the result passed every check etcd makes before it starts
    listening. ``default_host`` is consulted only when a listen URL is ``0.0.0.0`` and the
    matching advertise URL was left at its default (etcd then advertises the host's address).
    """
    st = _Parse(_flag_defaults())
    wants_help, positional = _parse_go_flags(argv, st)
    if wants_help:
        return Config(help=True)
    if positional:
        raise ConfigError(f"'{positional[0]}' is not a valid flag")
    if st.values["version"]:
        return Config(version=True)

    config_file = st.values["config-file"] or env.get("ETCD_CONFIG_FILE", "")
    if config_file:
        st = _load_config_file(config_file)
        st.notices.append(
            f"Loading server configuration from {go_quote(config_file)}. Other configuration "
            "command line flags and environment variables will be ignored if provided."
        )
    else:
        _apply_env(env, st)
        v = st.values
        may_be_proxy = v["proxy"] != "off" or (v["discovery"] != "" and v["discovery-fallback"] == "proxy")
        missing_ac = (
            "listen-client-urls" in st.explicit and "advertise-client-urls" not in st.explicit
        )
        if missing_ac and not may_be_proxy:
            # Listening somewhere specific but advertising localhost would mislead clients.
            v["advertise-client-urls"] = ()
        if (
            v["discovery"] or v["discovery-srv"] or v["discovery-srv-name"] or v["discovery-endpoints"]
        ) and ("initial-cluster" not in st.explicit):
            v["initial-cluster"] = ""

    _validate(st)
    _update_default_cluster_from_name(st, default_host)
    v = st.values
    if v["data-dir"] == "":
        v["data-dir"] = f"{v['name']}.etcd"
        st.warnings.append(f"no data-dir provided, using default data-dir ./{v['data-dir']}")
    quota = v["quota-backend-bytes"]
    if quota > MAX_QUOTA_BYTES:
        st.warnings.append(
            f"backend quota {quota} exceeds maximum recommended quota {MAX_QUOTA_BYTES}"
        )

    cfg = Config(
        **{FLAGS_BY_NAME[n].attr: val for n, val in v.items()},
        source="file" if config_file else "flags",
        explicitly_set=frozenset(st.explicit),
        env_used=tuple(st.env_used),
        warnings=tuple(st.warnings),
        notices=tuple(st.notices),
    )
    cfg.auto_compaction()  # etcd refuses a bad retention before it serves anything
    return cfg


def _validate(st: _Parse) -> None:
    """embed.Config.Validate, in etcd's order (the first failure is the one reported)."""
    v = st.values
    _setup_logging(st)
    for name in ("listen-peer-urls", "listen-client-urls", "listen-metrics-urls"):
        check_bind_urls(v[name])
    for name in ("initial-advertise-peer-urls", "advertise-client-urls"):
        try:
            check_host_urls(v[name])
        except ConfigError as e:
            addrs = ",".join(str(u) for u in v[name])
            raise ConfigError(f'--{name} {go_quote(addrs)} must be "host:port" ({e})') from None
    if v["initial-cluster-state"] not in (CLUSTER_STATE_NEW, CLUSTER_STATE_EXISTING):
        raise ConfigError(f"unexpected clusterState {go_quote(v['initial-cluster-state'])}")
    if sum(1 for n in ("discovery", "initial-cluster", "discovery-srv", "discovery-endpoints") if v[n]) > 1:
        raise ConfigError(ERR_CONFLICT_BOOTSTRAP)
    _validate_v3_discovery(v)
    tick, election = v["heartbeat-interval"], v["election-timeout"]
    if tick <= 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {tick}ms)")
    if election <= 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {election}ms)")
    if 5 * tick > election:
        raise ConfigError(
            f"--election-timeout[{election}ms] should be at least as 5 times as "
            f"--heartbeat-interval[{tick}ms]"
        )
    if election > MAX_ELECTION_MS:
        raise ConfigError(
            f"--election-timeout[{election}ms] is too long, and should be set less than "
            f"{MAX_ELECTION_MS}ms"
        )
    if not v["advertise-client-urls"]:
        raise ConfigError(ERR_UNSET_ADVERTISE_CLIENT_URLS)
    if v["auto-compaction-mode"] not in ("", "periodic", "revision"):
        raise ConfigError(f"unknown auto-compaction-mode {go_quote(v['auto-compaction-mode'])}")
    checkpoint = v["experimental-enable-lease-checkpoint"]
    persist = v["experimental-enable-lease-checkpoint-persist"]
    if checkpoint and not persist:
        st.warnings.append(
            "Detected that checkpointing is enabled without persistence. Consider enabling "
            "experimental-enable-lease-checkpoint-persist"
        )
    if persist and not checkpoint:
        raise ConfigError(
            "setting experimental-enable-lease-checkpoint-persist requires "
            "experimental-enable-lease-checkpoint"
        )


def _validate_v3_discovery(v: Mapping[str, Any]) -> None:
    """etcd 3.6's checks of its v3 discovery flags (embed.Config.Validate), in its words."""
    if v["discovery-proxy"] and (v["discovery-endpoints"] or v["discovery-token"]):
        raise ConfigError(
            "both v2 discovery settings (discovery, discovery-proxy) and v3 discovery settings "
            "(discovery-token, discovery-endpoints, discovery-cert, discovery-key, discovery-cacert, "
            "discovery-user, discovery-password) are set"
        )
    if bool(v["discovery-token"]) != bool(v["discovery-endpoints"]):
        raise ConfigError("both --discovery-token and --discovery-endpoints must be set")
    if any(ep.strip() == "" for ep in v["discovery-endpoints"]):
        raise ConfigError("--discovery-endpoints must not contain empty endpoints")


def _check_level(level: str) -> None:
    if level not in LOG_LEVELS:
        # etcd panics with exactly this text (logutil.ConvertTo*LogLevel).
        raise ConfigError(f"unknown level {go_quote(level)}")


def _setup_logging(st: _Parse) -> None:
    """The checks and log-output reconciliation of embed.Config.setupLogging."""
    v = st.values
    old, new = v["log-output"], v["log-outputs"]
    if len(old) != len(new):
        if len(old) > len(new):
            st.warnings.append("'--log-output' flag has been deprecated! Please use '--log-outputs'!")
            v["log-outputs"] = old
        else:
            v["log-output"] = ()
    else:
        if len(old) > 1:
            raise ConfigError("both '--log-output' and '--log-outputs' are set; only set '--log-outputs'")
        if len(old) < 1:
            raise ConfigError("either '--log-output' or '--log-outputs' flag must be set")
        if old == new and old[0] != LOG_OUTPUT_DEFAULT:
            raise ConfigError(
                f"'--log-output={go_quote_list(old)}' and '--log-outputs={go_quote_list(new)}' "
                "are incompatible; only set --log-outputs"
            )
        if old != (LOG_OUTPUT_DEFAULT,):
            st.warnings.append(
                f"[WARNING] Deprecated '--log-output' flag is set to {go_quote_list(old)}; "
                "Please use '--log-outputs' flag"
            )
    if v["debug"]:
        st.warnings.append(
            "[WARNING] Deprecated '--debug' flag is set to true (use '--log-level=debug' instead"
        )
        if v["log-level"] != "debug":
            st.warnings.append(
                "[WARNING] Deprecated '--debug' flag is set to true with inconsistent "
                f"'--log-level={v['log-level']}' flag"
            )
    if v["log-package-levels"]:
        st.warnings.append(
            f"[WARNING] Deprecated '--log-package-levels={v['log-package-levels']}' flag is set; "
            "use '--logger=zap' flag instead"
        )
    outputs: tuple[str, ...] = v["log-outputs"]
    logger = v["logger"]
    if logger == "capnslog":
        if not v["debug"]:  # with --debug etcd never looks at --log-level
            _check_level(v["log-level"])
        if len(outputs) != 1:
            raise ConfigError(
                "--logger=capnslog supports only 1 value in '--log-outputs', got "
                f"{go_quote_list(outputs)}"
            )
        if outputs[0] not in (LOG_OUTPUT_DEFAULT, "stderr", "stdout"):
            raise ConfigError(
                f"unknown log-output {go_quote(outputs[0])} (only supports "
                f'"{LOG_OUTPUT_DEFAULT}", "stderr", "stdout")'
            )
    elif logger == "zap":
        if not outputs:
            outputs = v["log-outputs"] = (LOG_OUTPUT_DEFAULT,)
        if len(outputs) > 1 and LOG_OUTPUT_DEFAULT in outputs:
            raise ConfigError(f'multi logoutput for "{LOG_OUTPUT_DEFAULT}" is not supported yet')
        if LOG_OUTPUT_JOURNAL in outputs and len(outputs) > 1:
            raise ConfigError(
                f"running with systemd/journal but other '--log-outputs' values "
                f"({go_quote_list(outputs)}) are configured with 'default'; override 'default' "
                "value with something else"
            )
        _check_level(v["log-level"])
    else:
        raise ConfigError(f"unknown logger option {go_quote(logger)}")


def _update_default_cluster_from_name(
    st: _Parse, default_host: Callable[[], str | None]
) -> None:
    """embed.Config.UpdateDefaultClusterFromName.

    ``etcd --name infra1`` alone bootstraps "infra1=<advertised peer URLs>" rather than the
    default "default=http://localhost:2380"; and listening on 0.0.0.0 with default advertise
    URLs advertises the host's address instead of localhost, keeping the listen port.
    """
    v = st.values

    def rename_cluster() -> None:
        if v["name"] != DEFAULT_NAME and v["initial-cluster"] == DEFAULT_INITIAL_CLUSTER:
            urls = v["initial-advertise-peer-urls"]
            name = v["name"] or DEFAULT_NAME  # InitialClusterFromName's fallback for ""
            v["initial-cluster"] = ",".join(f"{name}={u}" for u in urls)

    lp, lc = v["listen-peer-urls"][0], v["listen-client-urls"][0]
    ap_default = v["initial-advertise-peer-urls"] == (DEFAULT_LISTEN_PEER_URL,)
    ac_default = v["advertise-client-urls"] == (DEFAULT_LISTEN_CLIENT_URL,)
    fix_peer = ap_default and lp.hostname == "0.0.0.0"
    fix_client = ac_default and lc.hostname == "0.0.0.0"
    host = default_host() if fix_peer or fix_client else None
    if not host:
        rename_cluster()
        return
    if fix_peer:
        v["initial-advertise-peer-urls"] = (URL("http", f"{host}:{_port_text(lp)}"),)
    rename_cluster()
    if fix_client:
        v["advertise-client-urls"] = (URL("http", f"{host}:{_port_text(lc)}"),)
    st.notices.append(f"advertising using detected default host {go_quote(host)}")


def _port_text(u: URL) -> str:
    return split_host_port(u.host)[1]


# --- config file ---------------------------------------------------------------------------------

_JSON_PREFIX: Final = "error unmarshaling JSON: while decoding JSON: json: "

#: Keys etcdmain reads in its second pass over the file (configProxy), not embed.configYAML.
_PROXY_STRUCT_KEYS: Final = frozenset(
    {
        "proxy",
        "discovery-fallback",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
    }
)

_GO_TYPE: Final = {
    Kind.STRING: "string",
    Kind.CHOICE: "string",
    Kind.URLS: "string",
    Kind.CORS: "string",
    Kind.BOOL: "bool",
    Kind.UINT: "uint",
    Kind.UINT32: "uint32",
    Kind.UINT64: "uint64",
    Kind.INT: "int",
    Kind.INT64: "int64",
    Kind.DURATION: "time.Duration",
    Kind.STRINGS: "[]string",
    Kind.UNIQUE_STRINGS: "[]string",
}
_INT_RANGE: Final = {
    Kind.UINT: (0, 2**64 - 1),
    Kind.UINT64: (0, 2**64 - 1),
    Kind.UINT32: (0, 2**32 - 1),
    Kind.INT: (-(2**63), 2**63 - 1),
    Kind.INT64: (-(2**63), 2**63 - 1),
    Kind.DURATION: (-(2**63), 2**63 - 1),
}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _json_number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _match_key(key: str, known: Iterable[str]) -> str | None:
    """encoding/json's field match: exact name first, then case-insensitive."""
    known = list(known)
    if key in known:
        return key
    folded = key.casefold()
    for k in known:
        if k.casefold() == folded:
            return k
    return None


def _from_json(spec: FlagSpec, value: object, where: str) -> Any:
    """Decode one YAML value into a flag's Go field type, with encoding/json's errors.

    sigs.k8s.io/yaml turns the YAML into JSON first; etcd's struct then gets no scalar
    coercion, so ``name: 123`` is an error and durations are integers of nanoseconds.
    """
    # --host-whitelist is a comma-separated string in the file, a string set on the command line.
    kind = Kind.STRING if spec.name == "host-whitelist" else spec.kind
    go_type = _GO_TYPE[kind]

    def mismatch(jt: str) -> ConfigError:
        return ConfigError(
            f"{_JSON_PREFIX}cannot unmarshal {jt} into Go struct field {where} of type {go_type}"
        )

    if kind in (Kind.STRING, Kind.CHOICE, Kind.URLS, Kind.CORS):
        if isinstance(value, bool | int | float | list | dict):
            raise mismatch(_json_type(value))
        return str(value)  # str, or e.g. a YAML timestamp, which yaml.v2 hands over as text
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise mismatch(_json_type(value))
        return value
    if kind in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch(_json_type(value))
        lo, hi = _INT_RANGE[kind]
        # YAML 1.0 reaches Go as the JSON number 1 (float64 formatting), so it decodes.
        if (isinstance(value, float) and not value.is_integer()) or not lo <= value <= hi:
            raise ConfigError(
                f"{_JSON_PREFIX}cannot unmarshal number {_json_number_text(value)} into Go "
                f"struct field {where} of type {go_type}"
            )
        n = int(value)
        return _ns_to_td(n) if kind is Kind.DURATION else n
    if kind in (Kind.STRINGS, Kind.UNIQUE_STRINGS):
        if not isinstance(value, list):
            raise mismatch(_json_type(value))
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(
                    f"{_JSON_PREFIX}cannot unmarshal {_json_type(item)} into Go struct field "
                    f"{where} of type string"
                )
        return tuple(value)
    raise AssertionError(f"unhandled kind {kind}")  # pragma: no cover


def _read_yaml(path: str) -> object:
    try:
        import yaml  # PyYAML: only --config-file needs it
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            f"--config-file {path}: reading YAML needs PyYAML, which is not installed "
            "(pip install PyYAML)"
        ) from None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        why = (e.strerror or str(e)).lower()
        op = "read" if isinstance(e, IsADirectoryError) else "open"
        raise ConfigError(f"{op} {path}: {why}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"error converting YAML to JSON: yaml: {line}{problem}") from None


def _load_config_file(path: str) -> _Parse:
    """embed.ConfigFromFile + etcdmain.configFromFile: the file replaces flags and env."""
    doc = _read_yaml(path)
    st = _Parse(_flag_defaults())
    v = st.values
    # Defaults that differ when etcd starts from embed.NewConfig() rather than its flags.
    v["auto-compaction-retention"] = ""
    v["auto-compaction-mode"] = ""
    v["enable-grpc-gateway"] = False
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{_JSON_PREFIX}cannot unmarshal {_json_type(doc)} into Go value of type "
            "embed.configYAML"
        )
    mapping: dict[Any, Any] = doc
    v["config-file"] = path
    top: dict[str, FlagSpec] = {}
    nested: dict[str, dict[str, FlagSpec]] = {}
    for spec in FLAGS:
        key = spec.yaml_key
        if key is None or spec.kind is Kind.IGNORED:
            continue
        if "." in key:
            outer, inner = key.split(".", 1)
            nested.setdefault(outer, {})[inner] = spec
        else:
            top[key] = spec
    url_texts: dict[str, str] = {}
    tls_values: dict[str, Any] = {}

    def load(struct: str, keys: Mapping[str, FlagSpec]) -> None:
        for raw_key, value in mapping.items():
            key = _match_key(str(raw_key), [*keys, *(nested if struct == "configYAML" else ())])
            if key is None or value is None:
                continue  # unknown keys are ignored; null leaves the default
            if key in nested:
                if not isinstance(value, dict):
                    raise ConfigError(
                        f"{_JSON_PREFIX}cannot unmarshal {_json_type(value)} into Go struct "
                        f"field {struct}.{key} of type embed.securityConfig"
                    )
                for raw_inner, inner_value in value.items():
                    inner = _match_key(str(raw_inner), nested[key])
                    if inner is None or inner_value is None:
                        continue
                    spec = nested[key][inner]
                    tls_values[spec.name] = _from_json(spec, inner_value, f"{struct}.{key}.{inner}")
                    st.mark(spec.name)
                continue
            spec = keys[key]
            decoded = _from_json(spec, value, f"{struct}.{key}")
            if spec.kind in (Kind.URLS, Kind.CORS) or spec.name == "host-whitelist":
                url_texts[spec.name] = decoded  # parsed below, as etcd does after unmarshalling
            else:
                v[spec.name] = decoded
            st.mark(spec.name)

    load("configYAML", {k: s for k, s in top.items() if k not in _PROXY_STRUCT_KEYS})
    load("configProxy", {k: s for k, s in top.items() if k in _PROXY_STRUCT_KEYS})

    for name, text in url_texts.items():
        if text == "":
            continue
        if name == "cors":
            if text == "*":
                v[name] = ("*",)
                continue
            try:
                v[name] = tuple(sorted({str(u) for u in parse_urls(text)}))
            except ConfigError as e:
                raise ConfigError(f"new UniqueURLs should never fail: {e}") from None
        elif name == "host-whitelist":
            v[name] = tuple(sorted(set(text.split(","))))
        else:
            try:
                v[name] = tuple(parse_urls(text))
            except ConfigError as e:
                # etcd's own message names advertise-client-urls "advertise-peer-urls".
                shown = "advertise-peer-urls" if name == "advertise-client-urls" else name
                raise ConfigError(f"unexpected error setting up {shown}: {e}") from None
    for name, label in (("discovery-fallback", "discovery-fallback flag"), ("proxy", "proxyFlag")):
        spec = FLAGS_BY_NAME[name]
        if v[name] == "" or v[name] not in spec.choices:
            if v[name] != "":
                raise ConfigError(f"unexpected error setting up {label}: invalid value")
            v[name] = _DEFAULTS[spec.attr]
    # The TLS sections replace the TLS fields wholesale (copySecurityDetails).
    for spec in FLAGS:
        if spec.yaml_key is not None and "." in spec.yaml_key:
            v[spec.name] = tls_values.get(spec.name, _DEFAULTS[spec.attr])
    if (v["discovery"] or v["discovery-srv"]) and v["initial-cluster"] == DEFAULT_INITIAL_CLUSTER:
        v["initial-cluster"] = ""
    if v["initial-cluster-state"] == "":
        v["initial-cluster-state"] = CLUSTER_STATE_NEW
    if v["auto-compaction-retention"] == "":
        v["auto-compaction-retention"] = "0"  # embed.StartEtcd does the same
    return st
