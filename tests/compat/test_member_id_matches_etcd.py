"""minietcd's configuration layer agrees with the real etcd 3.4 binary.

* Member and cluster IDs: a real 3-member etcd cluster (one member with two peer URLs) is
  started on free 127.0.0.1 ports; the IDs ``etcdctl member list`` reports must equal what
  ``parse_config(<the same flags>)`` derives, and the ID etcd gives a member added at runtime
  must be ``member_id(urls, token, now)`` for the Unix time of the add.
* ``--help`` output is byte-identical, ``--version`` starts with etcd's line.
* For a table of bad command lines, environments and config files, the error minietcd raises
  is the text etcd prints (and etcd's exit status 2 for flag syntax errors is a UsageError).

Needs /usr/bin/etcd and /usr/bin/etcdctl (3.4.x). Skipped when missing, except in CI ($CI set),
where missing binaries fail the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from minietcd.errors import ConfigError
from minietcd.server import ids
from minietcd.server.config import USAGE_LINE, UsageError, help_text, parse_config

pytestmark = pytest.mark.compat

ETCD = os.environ.get("MINIETCD_ETCD_BIN", "/usr/bin/etcd")
ETCDCTL = os.environ.get("MINIETCD_ETCDCTL_BIN", "/usr/bin/etcdctl")


def _require(binary: str) -> str:
    if os.access(binary, os.X_OK):
        return binary
    found = shutil.which(os.path.basename(binary))
    if found:
        return found
    msg = f"{binary} not found: install etcd 3.4 (Debian package 'etcd-server'/'etcd-client')"
    if os.environ.get("CI"):
        pytest.fail(msg + " -- required in CI")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def etcd_bin() -> str:
    binary = _require(ETCD)
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    if "etcd Version: 3.4." not in out.stdout:
        pytest.skip(f"{binary} is not etcd 3.4: {out.stdout.splitlines()[:1]}")
    return binary


@pytest.fixture(scope="module")
def etcdctl_bin() -> str:
    return _require(ETCDCTL)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _clean_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    # No stray ETCD_* from the developer's shell: both sides must see the same environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env.update(extra)
    return env


# --- IDs -----------------------------------------------------------------------------------------


@dataclass
class _Member:
    name: str
    client_port: int
    peer_ports: list[int]
    proc: subprocess.Popen[bytes] | None = None
    argv: list[str] = field(default_factory=list)


@pytest.fixture
def three_members(etcd_bin: str, tmp_path: Path) -> Iterator[tuple[list[_Member], str]]:
    ports = _free_ports(7)
    members = [
        _Member("m1", ports[0], [ports[1], ports[2]]),  # two peer URLs: exercises the sort
        _Member("m2", ports[3], [ports[4]]),
        _Member("m3", ports[5], [ports[6]]),
    ]
    token = "minietcd-compat-token"

    def peer_urls(m: _Member) -> list[str]:
        # Given in reverse order on purpose: etcd sorts before hashing.
        return [f"http://127.0.0.1:{p}" for p in sorted(m.peer_ports, reverse=True)]

    initial_cluster = ",".join(f"{m.name}={u}" for m in members for u in peer_urls(m))
    for m in members:
        m.argv = [
            "--name", m.name,
            "--data-dir", str(tmp_path / f"{m.name}.etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--listen-peer-urls", ",".join(peer_urls(m)),
            "--initial-advertise-peer-urls", ",".join(peer_urls(m)),
            "--initial-cluster", initial_cluster,
            "--initial-cluster-token", token,
            "--initial-cluster-state", "new",
            # Lets `member add` run at once instead of after every member has been up for 5 s.
            "--strict-reconfig-check=false",
        ]  # fmt: skip
    logs = []
    try:
        for m in members:
            logs.append(open(tmp_path / f"{m.name}.log", "wb"))  # noqa: SIM115 - closed below
            m.proc = subprocess.Popen(
                [etcd_bin, *m.argv], stdout=logs[-1], stderr=subprocess.STDOUT, cwd=tmp_path,
                env=_clean_env(),
            )
        yield members, token
    finally:
        for log in logs:
            log.close()
        for m in members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.terminate()
        for m in members:
            if m.proc is not None:
                try:
                    m.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait(timeout=10)


def _etcdctl(etcdctl: str, endpoint: str, *args: str, timeout: float = 10) -> dict[str, object]:
    out = subprocess.run(
        [etcdctl, "--endpoints", endpoint, "--command-timeout=5s", *args, "-w", "json"],
        capture_output=True, text=True, timeout=timeout, env=_clean_env({"ETCDCTL_API": "3"}),
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_member_and_cluster_ids_match_real_etcd(
    three_members: tuple[list[_Member], str], etcdctl_bin: str
) -> None:
    members, token = three_members
    endpoint = f"http://127.0.0.1:{members[0].client_port}"
    deadline = time.monotonic() + 60
    listing: dict[str, object] | None = None
    while time.monotonic() < deadline:
        try:
            listing = _etcdctl(etcdctl_bin, endpoint, "member", "list")
            _etcdctl(etcdctl_bin, endpoint, "endpoint", "status")  # has a leader
            break
        except (RuntimeError, subprocess.TimeoutExpired):
            time.sleep(0.3)
    assert listing is not None, "the real etcd cluster did not come up within 60 s"
    header = listing["header"]
    assert isinstance(header, dict)
    real_members = listing["members"]
    assert isinstance(real_members, list)
    real_ids = {m["name"]: m["ID"] for m in real_members}

    for m in members:
        cfg = parse_config(m.argv, {}, default_host=lambda: None)
        cfg.verify_bootstrap()
        assert cfg.member_id() == real_ids[m.name], m.name
        assert cfg.initial_member_ids() == real_ids
        assert cfg.initial_cluster_id() == header["cluster_id"]
        # And the bare helpers, from the URLs etcd itself reports.
        peer = next(r["peerURLs"] for r in real_members if r["name"] == m.name)
        assert ids.member_id(peer, token) == real_ids[m.name]
    assert ids.cluster_id(real_ids.values()) == header["cluster_id"]

    # A member added at runtime: etcd hashes the URLs with an empty token and the Unix time.
    new_peer = f"http://127.0.0.1:{_free_ports(1)[0]}"
    before = int(time.time())
    added = _etcdctl(etcdctl_bin, endpoint, "member", "add", "m4", f"--peer-urls={new_peer}")
    after = int(time.time())
    member = added["member"]
    assert isinstance(member, dict)
    candidates = {ids.added_member_id([new_peer], now=t) for t in range(before - 1, after + 2)}
    assert member["ID"] in candidates
    assert ids.format_id(member["ID"]) == format(member["ID"], "x")


def test_initial_cluster_derived_from_name_like_etcd(
    etcd_bin: str, etcdctl_bin: str, tmp_path: Path
) -> None:
    """`etcd --name solo` with custom peer URLs and no --initial-cluster bootstraps
    "solo=<advertised peer URLs>" with the default token; the IDs must agree."""
    client, peer_a, peer_b = _free_ports(3)
    peers = f"http://127.0.0.1:{peer_b},http://127.0.0.1:{peer_a}"
    argv = [
        "--name", "solo",
        "--data-dir", str(tmp_path / "solo.etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", peers,
        "--initial-advertise-peer-urls", peers,
    ]  # fmt: skip
    cfg = parse_config(argv, {}, default_host=lambda: None)
    assert cfg.initial_cluster == ",".join(f"solo={u}" for u in sorted(peers.split(",")))
    cfg.verify_bootstrap()
    log = open(tmp_path / "solo.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [etcd_bin, *argv], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=_clean_env()
    )
    try:
        endpoint = f"http://127.0.0.1:{client}"
        deadline = time.monotonic() + 30
        while True:
            try:
                listing = _etcdctl(etcdctl_bin, endpoint, "member", "list")
                break
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        header = listing["header"]
        assert isinstance(header, dict)
        assert header["member_id"] == cfg.member_id()
        assert header["cluster_id"] == cfg.initial_cluster_id()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


# --- help and version ----------------------------------------------------------------------------


def test_help_is_byte_identical(etcd_bin: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [etcd_bin, "--help"], capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env=_clean_env(),
    )
    assert out.returncode == 0
    assert out.stdout == help_text()
    assert out.stderr == USAGE_LINE + "\n"
    assert parse_config(["--help"], {}).help


def test_version_first_line(etcd_bin: str) -> None:
    from minietcd.server.config import version_text

    out = subprocess.run([etcd_bin, "--version"], capture_output=True, text=True, timeout=30)
    assert version_text().splitlines()[0] == out.stdout.splitlines()[0]
    assert parse_config(["--version"], {"ETCD_UNKNOWN": "x"}).version


# --- error messages ------------------------------------------------------------------------------

# Fragments for cases that need listeners: ephemeral ports never collide, and the advertised
# peer URL port 1 is never bound.
_LISTEN = [
    "--listen-client-urls", "http://127.0.0.1:0",
    "--advertise-client-urls", "http://127.0.0.1:0",
    "--listen-peer-urls", "http://127.0.0.1:0",
]  # fmt: skip
_OK = [*_LISTEN, "--initial-advertise-peer-urls", "http://127.0.0.1:1",
       "--initial-cluster", "default=http://127.0.0.1:1"]  # fmt: skip


@dataclass(frozen=True)
class _Case:
    id: str
    argv: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)


CASES = [
    _Case("unknown-flag", ["--no-such-flag"]),
    _Case("unknown-single-dash", ["-x"]),
    _Case("bad-syntax", ["---name"]),
    _Case("missing-argument", ["--name"]),
    _Case("bad-uint", ["--election-timeout=abc"]),
    _Case("negative-uint", ["--heartbeat-interval", "-1"]),
    _Case("uint-out-of-range", ["--snapshot-count", "99999999999999999999999"]),
    _Case("bad-uint32", ["--max-concurrent-streams", "abc"]),
    _Case("bad-duration", ["--grpc-keepalive-min-time", "abc"]),
    _Case("bad-bool", ["--strict-reconfig-check=maybe"]),
    _Case("bool-takes-no-separate-value", ["--strict-reconfig-check", "false", *_OK]),
    _Case("bad-choice", ["--initial-cluster-state", "foo"]),
    _Case("bad-scheme", ["--listen-client-urls", "foo://127.0.0.1:1"]),
    _Case("no-scheme", ["--listen-peer-urls", "127.0.0.1:2380"]),
    _Case("no-port", ["--listen-client-urls", "http://localhost"]),
    _Case("bad-port", ["--advertise-client-urls", "http://a:xyz"]),
    _Case("url-path", ["--listen-metrics-urls", "http://127.0.0.1:1/metrics"]),
    _Case("empty-url-item", ["--initial-advertise-peer-urls", "http://127.0.0.1:1,,http://b:2"]),
    _Case("positional", ["extra", *_OK]),
    _Case("after-double-dash", ["--", "--name", "x"]),
    _Case("election-vs-heartbeat", ["--election-timeout", "400", *_OK]),
    _Case("election-too-long", ["--election-timeout", "60000", *_OK]),
    _Case("heartbeat-zero", ["--heartbeat-interval", "0", *_OK]),
    _Case("hex-and-octal", ["--heartbeat-interval", "0x10", "--election-timeout", "010", *_OK]),
    _Case("bind-needs-ip", ["--listen-client-urls", "http://example.com:2379",
                            "--advertise-client-urls", "http://127.0.0.1:1"]),
    _Case("advertise-required", ["--listen-client-urls", "http://127.0.0.1:0"]),
    _Case("advertise-empty-host", [*_LISTEN, "--initial-advertise-peer-urls", "http://:1"]),
    _Case("bootstrap-conflict", [*_OK, "--discovery", "http://127.0.0.1:1/x"]),
    _Case("compaction-mode", ["--auto-compaction-mode", "foo", *_OK]),
    _Case("compaction-retention", ["--auto-compaction-retention", "abc", *_OK]),
    _Case("unknown-logger", ["--logger", "foo", *_OK]),
    _Case("unknown-log-level", ["--log-level", "foo", *_OK]),
    _Case("capnslog-one-output", ["--log-outputs", "stderr,stdout", *_OK]),
    _Case("zap-multi-default", ["--logger", "zap", "--log-outputs", "default,stderr", *_OK]),
    _Case("lease-persist", ["--experimental-enable-lease-checkpoint-persist", *_OK]),
    _Case("env-conflict", ["--name", "y", *_OK], {"ETCD_NAME": "x"}),
    _Case("env-empty-conflict", ["--name", "y", *_OK], {"ETCD_NAME": ""}),
    _Case("env-invalid", _OK, {"ETCD_ELECTION_TIMEOUT": "abc"}),
    _Case("env-version-string", _OK, {"ETCD_VERSION": "3.4.23"}),
    _Case("env-sets-listen-only", [], {"ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:0"}),
    _Case("env-bad-url", [], {"ETCD_LISTEN_PEER_URLS": "http://127.0.0.1"}),
    # Bootstrap checks (etcd makes them after binding its listeners).
    _Case("own-name-missing", [*_LISTEN, "--name", "a", "--initial-advertise-peer-urls",
                               "http://127.0.0.1:1", "--initial-cluster", "b=http://127.0.0.1:1"]),
    _Case("initial-cluster-empty", [*_LISTEN, "--name", "a", "--initial-cluster", ""]),
    _Case("duplicate-url", [*_LISTEN, "--name", "a", "--initial-advertise-peer-urls",
                            "http://127.0.0.1:1", "--initial-cluster",
                            "a=http://127.0.0.1:1,b=http://127.0.0.1:1"]),
    _Case("cluster-url-not-advertised", [*_LISTEN, "--name", "a", "--initial-advertise-peer-urls",
                                         "http://127.0.0.1:1", "--initial-cluster",
                                         "a=http://127.0.0.1:2"]),
    _Case("advertised-url-not-in-cluster", [*_LISTEN, "--name", "a",
                                            "--initial-advertise-peer-urls",
                                            "http://127.0.0.1:1,http://127.0.0.1:2",
                                            "--initial-cluster", "a=http://127.0.0.1:1"]),
    _Case("default-name-custom-peer-url", [*_LISTEN, "--initial-advertise-peer-urls",
                                           "http://127.0.0.1:1"]),
    _Case("initial-cluster-no-url", [*_LISTEN, "--name", "a", "--initial-cluster", "a"]),
    _Case("empty-name", [*_LISTEN, "--name", "", "--initial-advertise-peer-urls",
                         "http://127.0.0.1:1"]),
    _Case("join-own-name-missing", [*_LISTEN, "--name", "a", "--initial-cluster-state",
                                    "existing", "--initial-cluster", "b=http://127.0.0.1:1"]),
    _Case("join-with-discovery", [*_LISTEN, "--name", "a", "--initial-cluster-state", "existing",
                                  "--discovery", "http://127.0.0.1:1/x",
                                  "--initial-advertise-peer-urls", "http://127.0.0.1:1"]),
    _Case("srv-and-initial-cluster", [*_OK, "--discovery-srv", "example.invalid"]),
    _Case("cors-needs-port", ["--cors", "http://example.com"]),
    _Case("log-output-and-outputs", ["--log-output", "stderr", "--log-outputs", "stderr", *_OK]),
    _Case("zap-journal-and-more", ["--logger", "zap", "--log-outputs", "systemd/journal,stderr",
                                   *_OK]),
    # Config files.
    _Case("file-missing", ["--config-file", "missing.yaml"]),
    _Case("file-type-string-for-uint", ["--config-file", "c.yaml"],
          files={"c.yaml": "heartbeat-interval: abc\n"}),
    _Case("file-negative-uint", ["--config-file", "c.yaml"],
          files={"c.yaml": "heartbeat-interval: -1\n"}),
    _Case("file-fraction-uint", ["--config-file", "c.yaml"],
          files={"c.yaml": "election-timeout: 1.5\n"}),
    _Case("file-number-for-string", ["--config-file", "c.yaml"], files={"c.yaml": "name: 123\n"}),
    _Case("file-duration-string", ["--config-file", "c.yaml"],
          files={"c.yaml": "grpc-keepalive-min-time: 5s\n"}),
    _Case("file-list-expected", ["--config-file", "c.yaml"], files={"c.yaml": "log-outputs: x\n"}),
    _Case("file-top-level-list", ["--config-file", "c.yaml"], files={"c.yaml": "- a\n"}),
    _Case("file-bool-string", ["--config-file", "c.yaml"],
          files={"c.yaml": 'strict-reconfig-check: "yes"\n'}),
    _Case("file-bad-url", ["--config-file", "c.yaml"],
          files={"c.yaml": "listen-client-urls: 127.0.0.1:0\n"}),
    _Case("file-bad-state", ["--config-file", "c.yaml"],
          files={"c.yaml": "initial-cluster-state: foo\n"}),
    _Case("file-election", ["--config-file", "c.yaml", "--election-timeout", "1"],
          files={"c.yaml": "heartbeat-interval: 300\n"}),
    _Case("file-from-env-ignores-flags", ["--name", "x"], {"ETCD_CONFIG_FILE": "c.yaml",
                                                           "ETCD_NAME": "y"},
          files={"c.yaml": "NAME: abc\nlisten-client-urls: http://127.0.0.1:0\n"
                 "listen-peer-urls: http://127.0.0.1:0\n"
                 "initial-advertise-peer-urls: http://127.0.0.1:1\n"
                 "initial-cluster: x=http://127.0.0.1:1\n"}),
]  # fmt: skip

_VERIFY = re.compile(r" E \| etcdmain: error verifying flags, (.*)\. See 'etcd --help'\.$")
_FATAL = re.compile(r" C \| [\w/.-]+: (.*)$")


def _etcd_error(etcd_bin: str, case: _Case, cwd: Path) -> tuple[int, str]:
    try:
        out = subprocess.run(
            [etcd_bin, *case.argv], capture_output=True, text=True, timeout=20, cwd=cwd,
            env=_clean_env(case.env),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"real etcd accepted {case.argv} {case.env} and kept running")
    lines = out.stderr.splitlines()
    if out.returncode == 2:
        panics = [line for line in lines if line.startswith("panic: ")]
        return 2, panics[0].removeprefix("panic: ") if panics else lines[0]
    for line in lines:
        if m := _VERIFY.search(line) or _FATAL.search(line):
            return out.returncode, m.group(1)
        if line.startswith("unexpected error setting up"):
            return out.returncode, line
    pytest.fail(f"no error found in etcd's output (exit {out.returncode}):\n{out.stderr}")


def _our_error(case: _Case) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg = parse_config(list(case.argv), case.env, default_host=lambda: None)
        if cfg.is_new_cluster:
            cfg.verify_bootstrap()
        else:
            cfg.verify_join_existing()
    return info.value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_message_matches_etcd(
    case: _Case, etcd_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    status, expected = _etcd_error(etcd_bin, case, tmp_path)
    monkeypatch.chdir(tmp_path)  # relative config-file paths
    err = _our_error(case)
    assert str(err) == expected
    # etcd exits 2 only for Go flag-package errors (and its log-level panic).
    if case.id != "unknown-log-level":
        assert isinstance(err, UsageError) == (status == 2)
