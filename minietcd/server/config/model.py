"""``Config``: the flag table's values plus what parsing found, and the rules etcd derives
from them (member and cluster IDs, bootstrap checks, auto compaction).

``Config()`` equals ``parse_config([], {})`` apart from the parse-time messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from minietcd.errors import ConfigError
from minietcd.golang import NumError, atoi, parse_duration_ns, quote, quote_list
from minietcd.server import ids
from minietcd.server.config.spec import CLUSTER_STATE_NEW, DEFAULT_QUOTA_BYTES, Kind
from minietcd.server.config.table import DEFAULTS, FLAGS_BY_NAME, EtcdFlags
from minietcd.server.config.values import ns_to_timedelta
from minietcd.server.urls import URL, parse_urls_map, resolve_tcp_host, resolve_url, urls_map_string


@dataclass(frozen=True, slots=True)
class Config(EtcdFlags):
    """Every etcd flag (the fields of :class:`~.table.EtcdFlags`), then what parsing found."""

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
            hours = atoi(text)
        except NumError:
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
                ret_ns = parse_duration_ns(text)
            except ValueError as e:
                raise ConfigError(f"error parsing CompactionRetention: {e}") from None
        if ret_ns == 0:
            return None
        if mode == "periodic":
            return (mode, ns_to_timedelta(ret_ns))
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
            if spec is None or spec.kind is Kind.IGNORED or spec.implemented:
                continue
            if getattr(self, spec.attr) != DEFAULTS[spec.attr]:
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
                f"couldn't find local name {quote(self.name)} in the initial cluster "
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
                f"couldn't find local name {quote(self.name)} in the initial cluster "
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


def _urls_equal(
    a: Sequence[URL], b: Sequence[URL], resolver: Callable[[str, str], str]
) -> tuple[bool, str]:
    """netutil.URLStringsEqual: equal as strings, else equal after resolving DNS names."""
    if len(a) != len(b):
        return False, (
            f"len({quote_list(str(u) for u in a)}) != len({quote_list(str(u) for u in b)})"
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
            return False, f"resolved urls: {quote(str(x))} != {quote(str(y))}"
    return True, ""


def _resolve_all(urls: Iterable[URL], resolver: Callable[[str, str], str]) -> list[URL]:
    out = []
    for u in urls:
        try:
            out.append(resolve_url(u, resolver))
        except ConfigError as e:
            raise ConfigError(f"failed to resolve {quote(str(u))} ({e})") from None
    return out


def _has_duplicate_url(urls_map: Mapping[str, list[URL]]) -> bool:
    seen: set[str] = set()
    for urls in urls_map.values():
        for u in urls:
            if str(u) in seen:
                return True
            seen.add(str(u))
    return False
