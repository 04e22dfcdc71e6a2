"""etcd's checks of a parsed configuration (embed.Config.Validate and the defaults it fills in),
in etcd's order and words: the first failure is the one reported."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from minietcd.errors import ConfigError
from minietcd.golang import quote, quote_list
from minietcd.server.config.spec import (
    CLUSTER_STATE_EXISTING,
    CLUSTER_STATE_NEW,
    DEFAULT_INITIAL_CLUSTER,
    DEFAULT_LISTEN_CLIENT_URL,
    DEFAULT_LISTEN_PEER_URL,
    DEFAULT_NAME,
    ERR_CONFLICT_BOOTSTRAP,
    ERR_UNSET_ADVERTISE_CLIENT_URLS,
    LOG_LEVELS,
    LOG_OUTPUT_DEFAULT,
    LOG_OUTPUT_JOURNAL,
    MAX_ELECTION_MS,
)
from minietcd.server.config.values import ParseState
from minietcd.server.urls import URL, check_bind_urls, check_host_urls, split_host_port


def validate(st: ParseState) -> None:
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
            raise ConfigError(f'--{name} {quote(addrs)} must be "host:port" ({e})') from None
    if v["initial-cluster-state"] not in (CLUSTER_STATE_NEW, CLUSTER_STATE_EXISTING):
        raise ConfigError(f"unexpected clusterState {quote(v['initial-cluster-state'])}")
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
        raise ConfigError(f"unknown auto-compaction-mode {quote(v['auto-compaction-mode'])}")
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
        raise ConfigError(f"unknown level {quote(level)}")


def _setup_logging(st: ParseState) -> None:
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
                f"'--log-output={quote_list(old)}' and '--log-outputs={quote_list(new)}' "
                "are incompatible; only set --log-outputs"
            )
        if old != (LOG_OUTPUT_DEFAULT,):
            st.warnings.append(
                f"[WARNING] Deprecated '--log-output' flag is set to {quote_list(old)}; "
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
                f"{quote_list(outputs)}"
            )
        if outputs[0] not in (LOG_OUTPUT_DEFAULT, "stderr", "stdout"):
            raise ConfigError(
                f"unknown log-output {quote(outputs[0])} (only supports "
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
                f"({quote_list(outputs)}) are configured with 'default'; override 'default' "
                "value with something else"
            )
        _check_level(v["log-level"])
    else:
        raise ConfigError(f"unknown logger option {quote(logger)}")


def update_default_cluster_from_name(
    st: ParseState, default_host: Callable[[], str | None]
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
    st.notices.append(f"advertising using detected default host {quote(host)}")


def _port_text(u: URL) -> str:
    return split_host_port(u.host)[1]
