"""Flag, environment and config-file parsing with etcd 3.4's rules and wording.

Expected messages were taken from the real etcd 3.4.23 binary (the compat suite re-checks the
error table against it: tests/compat/test_member_id_matches_etcd.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from minietcd.errors import ConfigError
from minietcd.server import ids
from minietcd.server.config import (
    FLAGS,
    FLAGS_BY_NAME,
    IMPLEMENTED_FLAGS,
    USAGE_LINE,
    Config,
    Kind,
    UsageError,
    help_text,
    parse_config,
    version_text,
)
from minietcd.server.urls import URL, parse_url, parse_urls

# Listeners and an initial cluster that pass every check, for tests about something else.
OK = [
    "--listen-client-urls", "http://127.0.0.1:2379",
    "--advertise-client-urls", "http://127.0.0.1:2379",
    "--listen-peer-urls", "http://127.0.0.1:2380",
    "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
    "--initial-cluster", "default=http://127.0.0.1:2380",
]  # fmt: skip


def parse(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Config:
    return parse_config(list(argv), env or {}, default_host=lambda: None)


def error(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(argv, env)
    return info.value


# --- registry and defaults -----------------------------------------------------------------------


def test_registry_and_config_fields_match() -> None:
    flag_attrs = {s.attr for s in FLAGS if s.kind is not Kind.IGNORED}
    meta = {"help", "source", "explicitly_set", "env_used", "warnings", "notices"}
    assert flag_attrs == {f.name for f in dataclasses.fields(Config)} - meta
    assert set(FLAGS_BY_NAME) >= IMPLEMENTED_FLAGS
    assert len(FLAGS_BY_NAME) == len(FLAGS)


def test_every_flag_in_etcd_help_is_registered() -> None:
    listed = [line.split()[0][2:] for line in help_text().splitlines() if line.startswith("  --")]
    assert len(listed) == 80
    assert all(name in FLAGS_BY_NAME for name in listed)


def test_defaults_are_etcds() -> None:
    cfg = parse()
    assert dataclasses.replace(cfg, warnings=()) == Config()
    assert cfg.name == "default"
    assert cfg.data_dir == "default.etcd"
    assert cfg.warnings == ("no data-dir provided, using default data-dir ./default.etcd",)
    assert [str(u) for u in cfg.listen_client_urls] == ["http://localhost:2379"]
    assert [str(u) for u in cfg.listen_peer_urls] == ["http://localhost:2380"]
    assert [str(u) for u in cfg.initial_advertise_peer_urls] == ["http://localhost:2380"]
    assert [str(u) for u in cfg.advertise_client_urls] == ["http://localhost:2379"]
    assert cfg.initial_cluster == "default=http://localhost:2380"
    assert cfg.initial_cluster_state == "new" and cfg.is_new_cluster
    assert cfg.initial_cluster_token == "etcd-cluster"
    assert (cfg.heartbeat_interval, cfg.election_timeout, cfg.election_ticks) == (100, 1000, 10)
    assert cfg.snapshot_count == 100000
    assert cfg.quota_backend_bytes == 0 and cfg.backend_quota_bytes == 2 * 1024**3
    assert cfg.max_request_bytes == 1572864
    assert cfg.max_txn_ops == 128
    assert cfg.max_concurrent_streams == 2**32 - 1
    assert cfg.strict_reconfig_check is True
    assert cfg.pre_vote is False
    assert cfg.initial_election_tick_advance is True
    assert cfg.grpc_keepalive_min_time == timedelta(seconds=5)
    assert cfg.grpc_keepalive_interval == timedelta(hours=2)
    assert cfg.grpc_keepalive_timeout == timedelta(seconds=20)
    assert cfg.experimental_warning_apply_duration == timedelta(milliseconds=100)
    assert (cfg.auto_compaction_mode, cfg.auto_compaction_retention) == ("periodic", "0")
    assert cfg.auto_compaction() is None
    assert (cfg.logger, cfg.log_level, cfg.log_outputs) == ("capnslog", "info", ("default",))
    assert cfg.cors == ("*",) and cfg.host_whitelist == ("*",)
    assert (cfg.auth_token, cfg.bcrypt_cost, cfg.auth_token_ttl) == ("simple", 10, 300)
    assert cfg.listen_metrics_urls == ()
    assert cfg.source == "flags"
    assert cfg.explicitly_set == frozenset()
    assert cfg.unimplemented_in_use() == []
    assert cfg.wal_path == "default.etcd/member/wal"


def test_help_text_and_usage() -> None:
    text = help_text()
    assert text.startswith("\nMember:\n  --name 'default'\n    Human-readable name for this member.\n")
    assert "\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus " in text
    assert text.endswith("'etcdmain=CRITICAL,etcdserver=DEBUG').\n\n")
    assert USAGE_LINE.startswith("Usage:\n\n  etcd [flags]\n")
    assert version_text().startswith("etcd Version: 3.4.23\n")


# --- Go flag syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "infra1"],
        ["-name", "infra1"],
        ["--name=infra1"],
        ["-name=infra1"],
        ["--name", "first", "--name", "infra1"],  # the last one wins
    ],
)
def test_flag_spellings(argv: list[str]) -> None:
    cfg = parse(argv)
    assert cfg.name == "infra1"
    assert cfg.data_dir == "infra1.etcd"
    assert cfg.explicitly_set == {"name"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--pre-vote"], True),
        (["-pre-vote"], True),
        (["--pre-vote=true"], True),
        (["--pre-vote=1"], True),
        (["--pre-vote=T"], True),
        (["--pre-vote=false"], False),
        (["--pre-vote=0"], False),
        (["--pre-vote=False"], False),
    ],
)
def test_bool_spellings(argv: list[str], expected: bool) -> None:
    assert parse(argv).pre_vote is expected


def test_bool_flag_never_takes_the_next_argument() -> None:
    err = error(["--strict-reconfig-check", "false", *OK])
    assert str(err) == "'false' is not a valid flag"
    assert not isinstance(err, UsageError)


def test_values_may_start_with_a_dash() -> None:
    assert parse(["--initial-cluster-token", "-odd-"]).initial_cluster_token == "-odd-"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-flag"], "flag provided but not defined: -no-such-flag"),
        (["-x"], "flag provided but not defined: -x"),
        (["--x=1"], "flag provided but not defined: -x"),
        (["---name"], "bad flag syntax: ---name"),
        (["-=x"], "bad flag syntax: -=x"),
        (["--name"], "flag needs an argument: -name"),
        (["--election-timeout=abc"], 'invalid value "abc" for flag -election-timeout: parse error'),
        (["--heartbeat-interval", "-1"], 'invalid value "-1" for flag -heartbeat-interval: parse error'),
        (
            ["--snapshot-count", "99999999999999999999999"],
            'invalid value "99999999999999999999999" for flag -snapshot-count: value out of range',
        ),
        (
            ["--max-concurrent-streams", "abc"],
            'invalid value "abc" for flag -max-concurrent-streams: strconv.ParseUint: parsing '
            '"abc": invalid syntax',
        ),
        (
            ["--max-concurrent-streams", "4294967296"],
            'invalid value "4294967296" for flag -max-concurrent-streams: strconv.ParseUint: '
            'parsing "4294967296": value out of range',
        ),
        (
            ["--grpc-keepalive-min-time", "5"],
            'invalid value "5" for flag -grpc-keepalive-min-time: parse error',
        ),
        (["--pre-vote=maybe"], 'invalid boolean value "maybe" for -pre-vote: parse error'),
        (
            ["--initial-cluster-state", "foo"],
            'invalid value "foo" for flag -initial-cluster-state: invalid value',
        ),
        (["--proxy", "maybe"], 'invalid value "maybe" for flag -proxy: invalid value'),
        (
            ["--listen-client-urls", "foo://127.0.0.1:1"],
            'invalid value "foo://127.0.0.1:1" for flag -listen-client-urls: URL scheme must be '
            "http, https, unix, or unixs: foo://127.0.0.1:1",
        ),
        (
            ["--listen-peer-urls", "127.0.0.1:2380"],
            'invalid value "127.0.0.1:2380" for flag -listen-peer-urls: parse "127.0.0.1:2380": '
            "first path segment in URL cannot contain colon",
        ),
        (
            ["--listen-client-urls", "http://localhost"],
            'invalid value "http://localhost" for flag -listen-client-urls: URL address does not '
            'have the form "host:port": http://localhost',
        ),
        (
            ["--advertise-client-urls", "http://a:xyz"],
            'invalid value "http://a:xyz" for flag -advertise-client-urls: parse "http://a:xyz": '
            'invalid port ":xyz" after host',
        ),
        (
            ["--listen-metrics-urls", "http://127.0.0.1:1/metrics"],
            'invalid value "http://127.0.0.1:1/metrics" for flag -listen-metrics-urls: URL must '
            "not contain a path: http://127.0.0.1:1/metrics",
        ),
        (
            ["--cors", "http://example.com"],
            'invalid value "http://example.com" for flag -cors: URL address does not have the '
            'form "host:port": http://example.com',
        ),
    ],
)
def test_go_flag_errors(argv: list[str], message: str) -> None:
    err = error(argv)
    assert isinstance(err, UsageError)
    assert err.exit_code == 2
    assert str(err) == message


def test_positional_arguments_and_double_dash() -> None:
    assert str(error(["extra", *OK])) == "'extra' is not a valid flag"
    assert str(error(["--", "--name", "x"])) == "'--name' is not a valid flag"
    assert str(error(["-", *OK])) == "'-' is not a valid flag"


@pytest.mark.parametrize("flag", ["-h", "--h", "-help", "--help", "--help=false"])
def test_help(flag: str) -> None:
    cfg = parse(["--name", "x", flag, "--no-such-flag"])
    assert cfg.help
    # Go stops at -h: an error before it still wins.
    with pytest.raises(UsageError):
        parse(["--no-such-flag", flag])


def test_version_skips_everything_else() -> None:
    cfg = parse(["--version", "--election-timeout", "1"], {"ETCD_NAME": "x"})
    assert cfg.version and not cfg.help
    assert not parse(["--version=false"]).version
    # ...but not positional arguments, which etcd checks first.
    assert str(error(["--version", "extra"])) == "'extra' is not a valid flag"


def test_number_syntax_is_gos() -> None:
    cfg = parse(["--heartbeat-interval", "0x10", "--election-timeout", "0o1750", "--snapshot-count", "1_000"])
    assert (cfg.heartbeat_interval, cfg.election_timeout, cfg.snapshot_count) == (16, 1000, 1000)
    assert parse(["--max-snapshots", "010"]).max_snapshots == 8  # a leading 0 is octal in Go
    assert parse(["--quota-backend-bytes", "-1"]).backend_quota_bytes is None
    assert parse(["--backend-batch-limit", "-0x10"]).backend_batch_limit == -16
    assert str(error(["--snapshot-count", "1__0"])).endswith("parse error")
    assert str(error(["--snapshot-count", "_1"])).endswith("parse error")
    assert str(error(["--snapshot-count", "09"])).endswith("parse error")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("5s", timedelta(seconds=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1.5)),
        (".5ms", timedelta(microseconds=500)),
        ("-2m", timedelta(minutes=-2)),
        ("300us", timedelta(microseconds=300)),
        ("300\u00b5s", timedelta(microseconds=300)),
        ("1500ns", timedelta(microseconds=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse(["--grpc-keepalive-interval", text]).grpc_keepalive_interval == expected


def test_url_lists_are_sorted_and_keep_duplicates() -> None:
    cfg = parse(
        [
            "--listen-client-urls",
            "http://127.0.0.2:1, http://127.0.0.1:1",
            "--advertise-client-urls",
            "http://b:1,http://a:1",
        ]
    )
    assert [str(u) for u in cfg.listen_client_urls] == ["http://127.0.0.1:1", "http://127.0.0.2:1"]
    assert [str(u) for u in cfg.advertise_client_urls] == ["http://a:1", "http://b:1"]
    # An empty value is UniqueURLs' allowed exception: it leaves the list as it was.
    assert parse(["--listen-metrics-urls", ""]).listen_metrics_urls == ()
    assert parse(["--listen-peer-urls", ""]).listen_peer_urls == Config().listen_peer_urls


def test_string_list_flags() -> None:
    cfg = parse(["--host-whitelist", "b,a,b", "--cipher-suites", "X,Y,X", "--cors", "http://b:1,http://a:1"])
    assert cfg.host_whitelist == ("a", "b")
    assert cfg.cipher_suites == ("X", "Y", "X")
    assert cfg.cors == ("http://a:1", "http://b:1")


def test_ignored_flags_warn_like_etcd() -> None:
    cfg = parse(["--snapshot", "-v", "--peer-heartbeat-interval=5"])
    assert cfg.warnings[:3] == (
        'flag "-snapshot" is no longer supported - ignoring.',
        'flag "-v" is no longer supported - ignoring.',
        'flag "-peer-heartbeat-interval" is no longer supported - ignoring.',
    )
    assert cfg.unimplemented_in_use() == []


# --- environment ---------------------------------------------------------------------------------


def test_env_sets_flags() -> None:
    cfg = parse(
        [], {"ETCD_NAME": "infra2", "ETCD_PRE_VOTE": "true", "ETCD_SNAPSHOT_COUNT": "5", "HOME": "/x"}
    )
    assert (cfg.name, cfg.pre_vote, cfg.snapshot_count) == ("infra2", True, 5)
    assert cfg.data_dir == "infra2.etcd"
    assert dict(cfg.env_used) == {"ETCD_NAME": "infra2", "ETCD_PRE_VOTE": "true", "ETCD_SNAPSHOT_COUNT": "5"}
    assert "recognized and used environment variable ETCD_NAME=infra2" in cfg.notices
    assert cfg.explicitly_set == {"name", "pre-vote", "snapshot-count"}


def test_env_and_command_line_for_the_same_flag_is_an_error() -> None:
    # etcd 3.4 refuses (fatal, exit 1) rather than letting one silently win.
    message = (
        'conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line '
        "flag (either unset environment variable or disable flag)"
    )
    assert str(error(["--name", "y"], {"ETCD_NAME": "x"})) == message
    assert str(error(["--name", "y"], {"ETCD_NAME": ""})) == message  # even when empty


def test_command_line_and_env_combine_for_different_flags() -> None:
    cfg = parse(["--name", "cli"], {"ETCD_INITIAL_CLUSTER_TOKEN": "env"})
    assert (cfg.name, cfg.initial_cluster_token) == ("cli", "env")


def test_env_warnings_and_errors() -> None:
    cfg = parse([], {"ETCD_FOO": "bar", "ETCD_NAME": "", "ETCDCTL_API": "3"})
    assert cfg.warnings[:2] == (
        "unrecognized environment variable ETCD_FOO=bar",
        "unrecognized environment variable ETCD_NAME=",  # empty: not used, so unrecognized
    )
    assert cfg.name == "default"
    assert (
        str(error(OK, {"ETCD_ELECTION_TIMEOUT": "abc"}))
        == 'invalid value "abc" for ETCD_ELECTION_TIMEOUT: parse error'
    )
    assert str(error([], {"ETCD_LISTEN_PEER_URLS": "http://127.0.0.1"})) == (
        'invalid value "http://127.0.0.1" for ETCD_LISTEN_PEER_URLS: URL address does not have '
        'the form "host:port": http://127.0.0.1'
    )
    # Docker images often export ETCD_VERSION=<version>; etcd 3.4 trips over it, and so do we.
    assert (
        str(error(OK, {"ETCD_VERSION": "3.4.23"})) == 'invalid value "3.4.23" for ETCD_VERSION: parse error'
    )
    assert not parse(OK, {"ETCD_VERSION": "true"}).version


def test_env_counts_as_set_for_derived_defaults() -> None:
    assert str(error([], {"ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:2379"})) == (
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    )


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--election-timeout", "400", *OK],
            "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]",
        ),
        (
            ["--election-timeout", "60000", *OK],
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
        ),
        (["--heartbeat-interval", "0", *OK], "--heartbeat-interval must be >0 (set to 0ms)"),
        (["--election-timeout", "0", *OK], "--election-timeout must be >0 (set to 0ms)"),
        (
            ["--listen-client-urls", "http://127.0.0.1:2379"],
            "--advertise-client-urls is required when --listen-client-urls is set explicitly",
        ),
        (
            ["--listen-client-urls", "http://example.com:2379", "--advertise-client-urls", "http://a:1"],
            "expected IP in URL for binding (http://example.com:2379)",
        ),
        (
            ["--listen-metrics-urls", "http://metrics.local:1"],
            "expected IP in URL for binding (http://metrics.local:1)",
        ),
        (
            ["--initial-advertise-peer-urls", "http://:1"],
            '--initial-advertise-peer-urls "http://:1" must be "host:port" (unexpected empty host (http://:1))',
        ),
        (
            [*OK, "--discovery", "http://d:1/x"],
            "multiple discovery or bootstrap flags are set. "
            'Choose one of "initial-cluster", "discovery" or "discovery-srv"',
        ),
        (["--auto-compaction-mode", "foo", *OK], 'unknown auto-compaction-mode "foo"'),
        (
            ["--auto-compaction-retention", "abc", *OK],
            'error parsing CompactionRetention: time: invalid duration "abc"',
        ),
        (
            ["--auto-compaction-retention", "-1", *OK],
            'error parsing CompactionRetention: time: missing unit in duration "-1"',
        ),
        (
            ["--auto-compaction-retention", "5x", *OK],
            'error parsing CompactionRetention: time: unknown unit "x" in duration "5x"',
        ),
        (["--logger", "foo", *OK], 'unknown logger option "foo"'),
        (["--log-level", "foo", *OK], 'unknown level "foo"'),
        (
            ["--log-outputs", "stderr,stdout", *OK],
            '--logger=capnslog supports only 1 value in \'--log-outputs\', got ["stderr" "stdout"]',
        ),
        (
            ["--log-outputs", "file.log", *OK],
            'unknown log-output "file.log" (only supports "default", "stderr", "stdout")',
        ),
        (
            ["--logger", "zap", "--log-outputs", "default,stderr", *OK],
            'multi logoutput for "default" is not supported yet',
        ),
        (
            ["--log-output", "stderr", "--log-outputs", "stderr", *OK],
            "'--log-output=[\"stderr\"]' and '--log-outputs=[\"stderr\"]' are incompatible; "
            "only set --log-outputs",
        ),
        (
            ["--experimental-enable-lease-checkpoint-persist", *OK],
            "setting experimental-enable-lease-checkpoint-persist requires "
            "experimental-enable-lease-checkpoint",
        ),
    ],
)
def test_validation_messages(argv: list[str], message: str) -> None:
    err = error(argv)
    assert str(err) == message
    assert not isinstance(err, UsageError)


def test_validation_accepts() -> None:
    assert parse(["--logger", "zap", "--log-outputs", "stderr,/tmp/x.log", *OK]).log_outputs == (
        "/tmp/x.log",
        "stderr",
    )
    assert parse(["--debug", "--log-level", "nonsense", *OK]).debug  # --debug skips the level
    assert parse(["--election-timeout", "500", *OK]).election_ticks == 5
    assert parse(
        ["--listen-client-urls", "unix://localhost:0", "--advertise-client-urls", "unix://localhost:0"]
    )
    cfg = parse(["--listen-client-urls", "http://[::1]:2379", "--advertise-client-urls", "http://[::1]:2379"])
    assert cfg.listen_client_urls[0].hostname == "::1" and cfg.listen_client_urls[0].port == 2379
    # With --proxy the unset advertise URLs are tolerated (etcd may run as a v2 proxy).
    assert parse(["--proxy", "on", "--listen-client-urls", "http://127.0.0.1:2379"]).proxy == "on"


def test_log_output_reconciliation() -> None:
    cfg = parse(["--logger", "zap", "--log-outputs", "stderr,stdout", *OK])
    assert cfg.log_output == ()
    cfg = parse(["--log-output", "stderr", *OK])
    assert cfg.log_outputs == ("default",)  # etcd 3.4 keeps --log-outputs here
    assert any("Deprecated '--log-output' flag" in w for w in cfg.warnings)


def test_auto_compaction() -> None:
    def ac(*argv: str) -> object:
        return parse([*argv, *OK]).auto_compaction()

    assert ac("--auto-compaction-retention", "1") == ("periodic", timedelta(hours=1))
    assert ac("--auto-compaction-retention", "30m") == ("periodic", timedelta(minutes=30))
    assert ac("--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000") == (
        "revision",
        1000,
    )
    assert ac("--auto-compaction-mode", "revision", "--auto-compaction-retention", "0") is None
    assert ac("--auto-compaction-retention", "0s") is None


# --- initial cluster -----------------------------------------------------------------------------


def test_initial_cluster_derived_from_name() -> None:
    cfg = parse(
        ["--name", "infra1", "--initial-advertise-peer-urls", "http://10.0.0.2:2380,http://10.0.0.1:2380"]
    )
    assert cfg.initial_cluster == "infra1=http://10.0.0.1:2380,infra1=http://10.0.0.2:2380"
    assert parse(["--name", "infra1"]).initial_cluster == "infra1=http://localhost:2380"
    # An explicit --initial-cluster is kept as given, even if it equals the default.
    explicit = parse(["--name", "a", "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:2"])
    assert explicit.initial_cluster == "a=http://127.0.0.1:1,b=http://127.0.0.1:2"
    # Discovery clears the default initial cluster.
    assert parse(["--name", "a", "--discovery", "http://d:1/x"]).initial_cluster == ""
    assert parse(["--discovery-srv", "example.com"]).initial_cluster == ""


def test_default_host_is_advertised_when_listening_on_all_interfaces() -> None:
    argv = [
        "--name",
        "n1",
        "--listen-peer-urls",
        "http://0.0.0.0:12380",
        "--listen-client-urls",
        "http://0.0.0.0:12379",
        "--advertise-client-urls",
        "http://localhost:2379",
    ]
    cfg = parse_config(argv, {}, default_host=lambda: "10.1.2.3")
    assert [str(u) for u in cfg.initial_advertise_peer_urls] == ["http://10.1.2.3:12380"]
    assert cfg.initial_cluster == "n1=http://10.1.2.3:12380"
    assert [str(u) for u in cfg.advertise_client_urls] == ["http://10.1.2.3:12379"]
    assert 'advertising using detected default host "10.1.2.3"' in cfg.notices
    # Not asked when nothing listens on 0.0.0.0; no host detected keeps localhost.
    assert parse_config(["--name", "n1"], {}, default_host=lambda: pytest.fail("asked")).name == "n1"
    assert parse_config(argv, {}, default_host=lambda: None).initial_cluster == "n1=http://localhost:2380"


def test_initial_cluster_map() -> None:
    cfg = parse(
        ["--name", "a", "--initial-cluster", "a=http://127.0.0.1:2,a=http://127.0.0.1:1,,b=https://h:3"]
    )
    assert {k: [str(u) for u in v] for k, v in cfg.initial_cluster_map().items()} == {
        "a": ["http://127.0.0.1:1", "http://127.0.0.1:2"],
        "b": ["https://h:3"],
    }
    bad = parse(["--name", "a", "--initial-cluster", "a"])
    with pytest.raises(
        ConfigError,
        match=r"^error setting up initial cluster: URL scheme must be http, https, unix, or unixs: $",
    ):
        bad.initial_cluster_map()


def _bootstrap_error(argv: list[str], resolver: Callable[[str, str], str] | None = None) -> str:
    cfg = parse(argv)
    with pytest.raises(ConfigError) as info:
        if resolver is None:
            cfg.verify_bootstrap()
        else:
            cfg.verify_bootstrap(resolver)
    return str(info.value)


def test_verify_bootstrap_messages() -> None:
    ap = ["--name", "a", "--initial-advertise-peer-urls", "http://127.0.0.1:1"]
    assert _bootstrap_error([*ap, "--initial-cluster", "b=http://127.0.0.1:1"]) == (
        'couldn\'t find local name "a" in the initial cluster configuration'
    )
    assert _bootstrap_error([*ap, "--initial-cluster", ""]) == (
        'couldn\'t find local name "a" in the initial cluster configuration'
    )
    assert _bootstrap_error([*ap, "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:1"]) == (
        "initial cluster a=http://127.0.0.1:1,b=http://127.0.0.1:1 has duplicate url"
    )
    assert _bootstrap_error([*ap, "--initial-cluster", "a=http://127.0.0.1:2"]) == (
        "--initial-cluster has a=http://127.0.0.1:2 but missing from "
        '--initial-advertise-peer-urls=http://127.0.0.1:1 (resolved urls: "http://127.0.0.1:1" != '
        '"http://127.0.0.1:2")'
    )
    two = ["--name", "a", "--initial-advertise-peer-urls", "http://127.0.0.1:1,http://127.0.0.1:2"]
    assert _bootstrap_error([*two, "--initial-cluster", "a=http://127.0.0.1:1"]) == (
        "--initial-advertise-peer-urls has http://127.0.0.1:2 but missing from "
        "--initial-cluster=a=http://127.0.0.1:1,a=http://127.0.0.1:2"
    )
    # The default name with custom peer URLs keeps the default initial cluster (etcd does too).
    assert _bootstrap_error(["--initial-advertise-peer-urls", "http://127.0.0.1:1"]) == (
        "--initial-cluster has default=http://localhost:2380 but missing from "
        '--initial-advertise-peer-urls=http://127.0.0.1:1 (resolved urls: "http://127.0.0.1:1" != '
        '"http://localhost:2380")'
    )


def test_verify_bootstrap_resolves_dns_names_only_when_needed() -> None:
    calls: list[tuple[str, str]] = []

    def resolver(host: str, port: str) -> str:
        calls.append((host, port))
        return {"node-a": "10.0.0.1", "node-b": "10.0.0.9"}[host] + ":" + port

    ok = parse(
        [
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
            "--initial-cluster",
            "a=http://node-a:2380",
        ]
    )
    ok.verify_bootstrap(resolver)
    assert calls == [("node-a", "2380")]
    same = parse(
        [
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://node-a:2380",
            "--initial-cluster",
            "a=http://node-a:2380",
        ]
    )
    same.verify_bootstrap(lambda h, p: pytest.fail("no lookup for equal strings"))
    message = _bootstrap_error(
        [
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
            "--initial-cluster",
            "a=http://node-b:2380",
        ],
        resolver,
    )
    assert message == (
        "--initial-cluster has a=http://node-b:2380 but missing from "
        '--initial-advertise-peer-urls=http://10.0.0.1:2380 (resolved urls: "http://10.0.0.1:2380" '
        '!= "http://10.0.0.9:2380")'
    )


def test_verify_join_existing() -> None:
    cfg = parse(
        ["--name", "a", "--initial-cluster-state", "existing", "--initial-cluster", "b=http://127.0.0.1:1"]
    )
    assert not cfg.is_new_cluster
    with pytest.raises(ConfigError, match='couldn\'t find local name "a"'):
        cfg.verify_join_existing()
    joined = parse(
        [
            "--name",
            "c",
            "--initial-cluster-state",
            "existing",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:3",
            "--initial-cluster",
            "a=http://127.0.0.1:1,c=http://127.0.0.1:3",
        ]
    )
    joined.verify_join_existing()
    disc = parse(["--name", "a", "--initial-cluster-state", "existing", "--discovery", "http://d:1/x"])
    with pytest.raises(
        ConfigError, match=r"^discovery URL should not be set when joining existing initial cluster$"
    ):
        disc.verify_join_existing()


# --- IDs -----------------------------------------------------------------------------------------


def test_ids_match_values_read_from_real_etcd() -> None:
    # From etcd 3.4.23: --name n1 --initial-advertise-peer-urls http://127.0.0.1:56129
    # --initial-cluster n1=http://127.0.0.1:56129 --initial-cluster-token tok-xyz
    url = "http://127.0.0.1:56129"
    assert ids.member_id([url], "tok-xyz") == 17132747026699915890
    assert ids.cluster_id([17132747026699915890]) == 14856724646200471589
    assert ids.format_id(17132747026699915890) == "edc3bea5c9141272"
    assert ids.parse_id("edc3bea5c9141272") == 17132747026699915890
    cfg = parse(
        [
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            url,
            "--initial-cluster",
            f"n1={url}",
            "--initial-cluster-token",
            "tok-xyz",
        ]
    )
    cfg.verify_bootstrap()
    assert cfg.member_id() == 17132747026699915890
    assert cfg.initial_cluster_id() == 14856724646200471589


def test_member_id_sorts_urls_and_cluster_id_sorts_ids() -> None:
    urls = [parse_url("http://127.0.0.1:2"), parse_url("http://127.0.0.1:1")]
    assert ids.member_id(urls, "t") == ids.member_id(["http://127.0.0.1:1", "http://127.0.0.1:2"], "t")
    assert ids.member_id(urls, "t") != ids.member_id(urls, "u")
    assert ids.member_id(urls, "t", now=1) != ids.member_id(urls, "t")
    assert ids.added_member_id(urls, 5) == ids.member_id(urls, "", 5)
    assert ids.cluster_id([3, 1, 2]) == ids.cluster_id([1, 2, 3])


def test_initial_member_ids_and_discovery_token() -> None:
    cfg = parse(
        [
            "--name",
            "a",
            "--initial-cluster",
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2",
            "--initial-cluster-token",
            "tk",
        ]
    )
    assert cfg.initial_member_ids() == {
        "a": ids.member_id(["http://127.0.0.1:1"], "tk"),
        "b": ids.member_id(["http://127.0.0.1:2"], "tk"),
    }
    # With --discovery etcd uses the discovery URL as the token and only knows itself.
    disc = parse(
        [
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:1",
            "--discovery",
            "https://d.example:443/abc",
        ]
    )
    assert disc.initial_member_ids() == {
        "a": ids.member_id(["http://127.0.0.1:1"], "https://d.example:443/abc")
    }


# --- what is implemented -------------------------------------------------------------------------


def test_unimplemented_in_use() -> None:
    cfg = parse(
        [
            "--enable-v2",
            "--max-wals",
            "5",
            "--auto-compaction-retention",
            "1",
            "--name",
            "x",
            "--force-new-cluster=false",
            *OK,
        ],
        {"ETCD_METRICS": "extensive"},
    )
    # max-wals and force-new-cluster are at their defaults: nothing unimplemented is asked for.
    assert cfg.unimplemented_in_use() == ["auto-compaction-retention", "enable-v2", "metrics"]
    assert cfg.unimplemented_warnings()[0] == (
        "flag --auto-compaction-retention is accepted but not implemented by minietcd yet; ignoring"
    )
    assert "force-new-cluster" not in IMPLEMENTED_FLAGS
    assert parse(["--force-new-cluster"]).unimplemented_in_use() == ["force-new-cluster"]
    assert FLAGS_BY_NAME["name"].implemented and not FLAGS_BY_NAME["proxy"].implemented
    assert FLAGS_BY_NAME["initial-cluster-token"].env_var == "ETCD_INITIAL_CLUSTER_TOKEN"


# --- config file ---------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "etcd.conf.yml"
    path.write_text(text)
    return str(path)


def test_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: infra1
Data-Dir: /var/lib/x   # keys match case-insensitively, like encoding/json
heartbeat-interval: 200
election-timeout: 2000
listen-peer-urls: http://127.0.0.1:2380
listen-client-urls: http://127.0.0.1:2379
initial-advertise-peer-urls: http://127.0.0.1:2380
pre-vote: yes
grpc-keepalive-min-time: 2000000000
log-outputs: [stderr]
max-wals: 1.0
proxy-refresh-interval: 1000
unknown-key: ignored
wal-dir: null
client-transport-security:
  cert-file: /c.pem
  client-cert-auth: true
peer-transport-security:
  auto-tls: true
""",
    )
    cfg = parse(["--config-file", path, "--name", "ignored"], {"ETCD_NAME": "ignored"})
    assert cfg.source == "file" and cfg.config_file == path
    assert (cfg.name, cfg.data_dir, cfg.heartbeat_interval, cfg.election_timeout) == (
        "infra1",
        "/var/lib/x",
        200,
        2000,
    )
    # Only the name was given: the initial cluster is derived from it, as on the command line.
    assert cfg.initial_cluster == "infra1=http://127.0.0.1:2380"
    # The file keeps the default advertise-client-urls even though listen-client-urls is set.
    assert [str(u) for u in cfg.advertise_client_urls] == ["http://localhost:2379"]
    assert cfg.pre_vote is True
    assert cfg.grpc_keepalive_min_time == timedelta(seconds=2)  # nanoseconds in the file
    assert cfg.log_outputs == ("stderr",)
    assert cfg.max_wals == 1
    assert cfg.proxy_refresh_interval == 1000
    assert (cfg.cert_file, cfg.client_cert_auth, cfg.peer_auto_tls) == ("/c.pem", True, True)
    assert cfg.wal_dir == ""
    assert cfg.auto_compaction_mode == "" and cfg.auto_compaction_retention == "0"
    assert cfg.enable_grpc_gateway is False  # embed.NewConfig's default, not the flag's
    assert cfg.explicitly_set >= {"name", "cert-file", "client-cert-auth", "peer-auto-tls", "max-wals"}
    assert cfg.unimplemented_in_use() == [
        "grpc-keepalive-min-time",
        "log-outputs",
        "max-wals",
        "proxy-refresh-interval",
    ]
    assert any("Other configuration command line flags" in n for n in cfg.notices)
    with pytest.raises(UsageError):  # flags are still parsed, only their values are ignored
        parse(["--config-file", path, "--no-such-flag"])


def test_config_file_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "name: fromfile\n")
    cfg = parse(["--name", "x"], {"ETCD_CONFIG_FILE": path, "ETCD_NAME": "y"})
    assert cfg.name == "fromfile"
    assert parse([], {"ETCD_CONFIG_FILE": ""}).source == "flags"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "heartbeat-interval: abc\n",
            "json: cannot unmarshal string into Go struct field configYAML.heartbeat-interval of type uint",
        ),
        (
            "heartbeat-interval: -1\n",
            "json: cannot unmarshal number -1 into Go struct field configYAML.heartbeat-interval "
            "of type uint",
        ),
        (
            "election-timeout: 1.5\n",
            "json: cannot unmarshal number 1.5 into Go struct field configYAML.election-timeout of type uint",
        ),
        ("name: 123\n", "json: cannot unmarshal number into Go struct field configYAML.name of type string"),
        (
            "grpc-keepalive-min-time: 5s\n",
            "json: cannot unmarshal string into Go struct field "
            "configYAML.grpc-keepalive-min-time of type time.Duration",
        ),
        (
            "log-outputs: stderr\n",
            "json: cannot unmarshal string into Go struct field configYAML.log-outputs of type []string",
        ),
        (
            "strict-reconfig-check: 'yes'\n",
            "json: cannot unmarshal string into Go struct field configYAML.strict-reconfig-check "
            "of type bool",
        ),
        (
            "proxy-dial-timeout: x\n",
            "json: cannot unmarshal string into Go struct field configProxy.proxy-dial-timeout of type uint",
        ),
        (
            "client-transport-security: x\n",
            "json: cannot unmarshal string into Go struct field "
            "configYAML.client-transport-security of type embed.securityConfig",
        ),
        ("- a\n", "json: cannot unmarshal array into Go value of type embed.configYAML"),
    ],
)
def test_config_file_type_errors(tmp_path: Path, text: str, message: str) -> None:
    err = error(["--config-file", write(tmp_path, text)])
    assert str(err) == "error unmarshaling JSON: while decoding JSON: " + message


def test_config_file_other_errors(tmp_path: Path) -> None:
    assert str(error(["--config-file", str(tmp_path / "missing.yaml")])) == (
        f"open {tmp_path / 'missing.yaml'}: no such file or directory"
    )
    assert str(error(["--config-file", write(tmp_path, "listen-client-urls: 127.0.0.1:0\n")])) == (
        'unexpected error setting up listen-client-urls: parse "127.0.0.1:0": first path segment '
        "in URL cannot contain colon"
    )
    assert (
        str(error(["--config-file", write(tmp_path, "initial-cluster-state: foo\n")]))
        == 'unexpected clusterState "foo"'
    )
    assert (
        str(error(["--config-file", write(tmp_path, "proxy: maybe\n")]))
        == "unexpected error setting up proxyFlag: invalid value"
    )
    assert str(error(["--config-file", write(tmp_path, "a: [\n")])).startswith(
        "error converting YAML to JSON: yaml: "
    )
    assert (
        str(error(["--config-file", write(tmp_path, "auto-compaction-retention: 1h\n")]))
        == "unsupported compaction mode "
    )


def test_config_file_edge_values(tmp_path: Path) -> None:
    cfg = parse(["--config-file", write(tmp_path, "")])
    assert cfg.source == "file" and cfg.name == "default"
    cfg = parse(
        [
            "--config-file",
            write(tmp_path, "cors: 'http://b:1,http://a:1'\nhost-whitelist: y,x\ndiscovery: http://d:1/x\n"),
        ]
    )
    assert cfg.cors == ("http://a:1", "http://b:1")
    assert cfg.host_whitelist == ("x", "y")
    assert cfg.initial_cluster == ""


# --- URL helpers ---------------------------------------------------------------------------------


def test_urls() -> None:
    u = parse_url(" HTTP://user@127.0.0.1:2379?x=1#f ")
    assert str(u) == "http://user@127.0.0.1:2379?x=1#f"
    assert (u.scheme, u.hostname, u.port, u.is_tls) == ("http", "127.0.0.1", 2379, False)
    assert parse_url("http://127.0.0.1:").port is None
    assert parse_url("unixs://localhost:0").is_unix
    assert parse_url("https://[::1]:1").hostname == "::1"
    assert [str(x) for x in parse_urls(["http://b:1", "http://a:1"])] == ["http://a:1", "http://b:1"]
    assert URL("http", "localhost:2380") == parse_url("http://localhost:2380")
    for bad, why in [
        ("", "URL scheme must be http, https, unix, or unixs: "),
        ("localhost:2380", "URL scheme must be http, https, unix, or unixs: localhost:2380"),
        ("http:foo", 'URL address does not have the form "host:port": http:foo'),
        ("http://[::1", "parse \"http://[::1\": missing ']' in host"),
        ("http://::1:2", 'URL address does not have the form "host:port": http://::1:2'),
        ("http://a:1/", "URL must not contain a path: http://a:1/"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_url(bad)
        assert str(info.value) == why
    with pytest.raises(ConfigError, match=r"^no valid URLs given$"):
        parse_urls([])
