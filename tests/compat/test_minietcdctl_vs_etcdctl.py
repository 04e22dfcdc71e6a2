"""minietcdctl prints what the real etcdctl 3.4 prints, byte for byte, with the same exit codes.

Two parts, both against real etcd 3.4:

- **Script** (``SCRIPT``): one scripted sequence of commands (every output format, errors,
  transactions from stdin, watch replays and a command per event, leases, membership, lock,
  elect, snapshot, env vars, help texts) runs with etcdctl on a fresh 1-member etcd, then with
  ``python -m minietcdctl`` on the same cluster started afresh (same name, ports, token and
  data directory, so cluster and member IDs and revisions are the same). Each command's stdout
  and exit code are compared.
- **Live cluster** (``LIVE``): on one running 3-member cluster, etcdctl and minietcdctl run each
  read-only command back to back, against the same state.

Normalised, and only these: IDs the server draws at random (lease IDs, the ID of a member added
by ``member add``; mapped to ``<id1>``, ``<id2>``... in order of appearance, consistently in hex
and decimal), lease TTL countdowns, ``endpoint health`` durations, and the database size (bbolt
commits on a 100 ms timer, so the same writes can leave files of different sizes).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster.harness import (
    ETCDCTL,
    ProcessCluster,
    clean_env,
    client_test_cluster,
    free_ports,
    require_binary,
)

pytestmark = [pytest.mark.compat]

ROOT = Path(__file__).resolve().parents[2]
MINIETCDCTL = [sys.executable, "-m", "minietcdctl"]
FORMATS = ("simple", "json", "fields", "table", "protobuf")

TXN_SUCCESS = """\
value("foo") = "bar"
mod("foo1") > "0"

put txn-ok yes
get foo --prefix --limit 2
del foo3 --prev-kv

put txn-failed yes

"""
TXN_FAILURE = """\
version("foo") = "100"

put never yes

put txn-else yes
get txn-else
get foo --keys-only

"""


@dataclass
class Step:
    """One command line (placeholders: {ep} client URL, {tmp} scratch dir, {dead} a closed
    port, {peer} a spare peer URL, {lease} / {member} IDs captured earlier in the same run)."""

    args: str
    stdin: str = ""
    env: dict[str, str] = field(default_factory=dict)
    until: str | None = None  # long-running: wait until stdout matches this regex, then SIGINT
    endpoints: bool = True  # prepend --endpoints={ep}
    capture: tuple[str, str] | None = None  # (name, regex with one group) from stdout
    ttl: bool = False  # normalise remaining TTLs
    took: bool = False  # normalise health durations (and table widths)
    flex: bool = False  # random IDs in a table: compare sorted rows, runs of spaces and dashes collapsed


def each_format(args: str, formats: tuple[str, ...] = FORMATS, **kw: object) -> list[Step]:
    return [Step(f"{args} -w {fmt}", **kw) for fmt in formats]  # type: ignore[arg-type]  # Step's fields


SCRIPT: list[Step] = [
    Step("put foo bar"),
    Step("put foo1 bar1"),
    Step("put foo2 bar2"),
    Step("put foo3 bar3"),
    Step("put 'key with space' 'value\twith tab'"),
    *each_format("get foo"),
    *each_format("get foo --prefix --limit 2 --order=DESCEND --sort-by=MODIFY"),
    Step("get foo foo3 --keys-only"),
    Step("get '' --prefix --print-value-only"),
    Step("get foo --print-value-only -w json"),
    Step("get foo --prefix --hex"),
    Step("get --from-key foo2 --rev 3 -w fields"),
    Step("get foo --consistency=s -w json"),
    Step("get foo --consistency=x"),
    Step("get foo --order=sideways"),
    Step("get foo --sort-by=colour"),
    Step("get"),
    Step("get foo bar --prefix"),
    # The watch replays history from revision 1 in one response.
    Step("watch foo --prefix --rev=1 --prev-kv", until=r"foo3\nbar3\n"),
    Step("watch foo --prefix --rev=1 --prev-kv -w json", until=r'"Created":false}\n'),
    Step("watch foo --prefix --rev=1 --prev-kv -w fields", until=r'"bar3"\n"Lease" : 0\n'),
    Step(
        "watch foo --rev=1 -- sh -c 'echo $ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY'",
        until=r'"PUT" "foo"\n',
    ),
    Step("watch -i", stdin="frob\nwatch\nwatch foo --rev=1\n", until=r"foo\nbar\n"),
    Step("watch -i --prefix", stdin="watch foo --rev=2 -- echo event\n", until=r"event\n"),
    Step("watch -i", stdin="watch foo --rev=1 --\n"),
    Step("watch -i", stdin="watch foo"),
    Step("watch --rev=1", env={"ETCDCTL_WATCH_KEY": "foo"}, until=r"foo\nbar\n"),
    Step("watch foo", env={"ETCDCTL_WATCH_KEY": "foo"}),
    Step("watch", env={"ETCDCTL_WATCH_RANGE_END": "z"}),
    Step("watch"),
    Step("watch foo --"),
    Step("watch foo bar --prefix"),
    *each_format("put foo baz --prev-kv", ("simple", "json", "fields", "table")),
    Step("put from-stdin", stdin="value from stdin\n"),
    Step("get from-stdin -w json"),
    Step("put"),
    Step("put k v --lease=zz"),
    Step("put nokey --ignore-value"),
    Step("put k --ignore-value v"),
    *each_format("del foo2 --prev-kv", ("simple", "json", "fields")),
    Step("del nokey"),
    Step("del foo --prefix --from-key"),
    Step("del a b c"),
    *each_format("txn", ("simple", "json", "fields"), stdin=TXN_SUCCESS),
    Step("txn -i", stdin=TXN_FAILURE),
    Step("txn", stdin='value("foo") = "baz"\n\nput only-if yes\n\n\n'),
    Step("txn", stdin="bogus\n\n\n\n"),
    Step("txn", stdin='version("foo") = "x"\n\n\n\n'),
    Step("txn", stdin="\nfrob a b\n\n\n"),
    Step("txn", stdin="\n\nget foo"),
    Step("txn extra-arg"),
    Step("compaction 3"),
    Step("compaction x"),
    Step("get foo --rev 2"),
    Step("watch foo --rev=2 -w json"),  # canceled by the server: exits by itself
    # Before any key gets a (random) lease ID: the hash covers every key's lease.
    *each_format("endpoint hashkv"),
    Step("endpoint hashkv --rev 5 -w json"),
    Step("lease grant 600", capture=("lease", r"lease ([0-9a-f]{16}) granted")),
    Step("put leased v --lease={lease}"),
    *each_format("lease timetolive {lease} --keys", ttl=True),
    *each_format("lease list"),
    *each_format("lease keep-alive --once {lease}", ("simple", "json", "fields", "table")),
    Step("lease keep-alive {lease}", until=r"keepalived with TTL\(600\)\n"),
    Step("lease grant 100 -w json"),
    Step("lease grant 100 -w fields"),
    Step("lease grant x"),
    *each_format("lease revoke {lease}", ("json",)),
    Step("lease revoke {lease}"),
    Step("lease timetolive {lease}", ttl=True),
    Step("lease keep-alive {lease}"),
    Step("lease keep-alive --once {lease}"),
    Step("get leased"),
    *each_format("member list"),
    Step("member add n9 --peer-urls={peer} --learner", capture=("member", r"Member +([0-9a-f]+) added")),
    Step("member list -w table", flex=True),
    Step("member update {member} --peer-urls={peer}"),
    Step("member promote {member}"),
    Step("member remove {member} -w json"),
    Step("member remove {member}"),
    Step("member add"),
    Step("member add a b http://x"),
    Step("member add a"),
    Step("member remove zz"),
    *each_format("endpoint status"),
    Step("endpoint status --cluster -w table"),
    *each_format("endpoint health", ("json", "fields", "table"), took=True),
    Step("endpoint health --cluster -w json", took=True),
    *each_format("alarm list", ("simple", "json", "protobuf")),
    Step("alarm disarm"),
    Step("alarm list extra"),
    Step("defrag"),
    Step("defrag --cluster"),
    Step("snapshot save {tmp}/snap.db"),
    Step("snapshot save"),
    Step("move-leader 1"),
    Step("move-leader zz"),
    Step("lock mylock", until=r"mylock/[0-9a-f]+\n\n"),
    Step("lock mylock sh -c 'echo locked $ETCD_LOCK_KEY'"),
    Step("lock mylock false"),
    Step("lock"),
    Step("elect myelection proposal-1", until=r"proposal-1\n"),
    Step("elect myelection"),
    Step("elect myelection p -l"),
    Step("version"),
    Step("get foo", env={"ETCDCTL_WRITE_OUT": "json"}),
    Step("get foo", env={"ETCDCTL_ENDPOINTS": "{ep}"}, endpoints=False),
    Step("get foo", env={"ETCDCTL_ENDPOINTS": "{ep}"}),
    Step("get foo -w fields", env={"ETCDCTL_DIAL_TIMEOUT": "1s", "ETCDCTL_COMMAND_TIMEOUT": "3s"}),
    Step("--endpoints=127.0.0.1:{dead} --command-timeout=1s get foo", endpoints=False),
    Step("--endpoints=127.0.0.1:{dead} --command-timeout=1s put foo x", endpoints=False),
    Step("--help", endpoints=False),
    Step("get --help", endpoints=False),
    Step("lease --help", endpoints=False),
    Step("member --help", endpoints=False),
    Step("help watch", endpoints=False),
    Step("memb li -w fields"),
    Step("get --nope"),
    Step("get foo --limit=abc"),
    Step("frobnicate"),
    Step("get foo -w yaml"),
]


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes


class Normaliser:
    """Maps random IDs to <idN> (per run, by order of first appearance) and blanks timings."""

    # A decimal stands alone: a run of digits inside a hex word is part of that word (etcd's
    # lease IDs carry a millisecond clock in hex, which can spell ten decimal digits in a row).
    BIG_DEC = re.compile(rb"(?<![0-9a-zA-Z])[0-9]{10,20}(?![0-9a-zA-Z])")
    HEX = re.compile(rb"(?<![0-9a-zA-Z])[0-9a-f]{9,16}(?![0-9a-zA-Z])")

    def __init__(self, keep: set[int]) -> None:
        self.keep = keep  # IDs that are the same in both runs (cluster and member IDs)
        self.ids: dict[int, bytes] = {}

    def _name(self, value: int) -> bytes | None:
        if value < 2**32 or value in self.keep:
            return None
        if value not in self.ids:
            self.ids[value] = b"<id%d>" % (len(self.ids) + 1)
        return self.ids[value]

    def learn(self, value: int) -> None:
        self._name(value)

    def __call__(self, out: bytes, step: Step) -> bytes:
        def dec(m: re.Match[bytes]) -> bytes:
            return self._name(int(m.group(0))) or m.group(0)

        def hexa(m: re.Match[bytes]) -> bytes:
            token = m.group(0)
            if token.isdigit() and len(token) < 16:  # a decimal (e.g. a hash), not a hex ID
                return token
            return self._name(int(token, 16)) or token

        out = self.HEX.sub(hexa, self.BIG_DEC.sub(dec, out))
        if step.ttl:
            out = re.sub(rb"remaining\(\d+s\)", b"remaining(Ns)", out)
            out = re.sub(rb'("ttl":|"TTL" : )\d+', rb"\1N", out)
        if step.took:
            out = re.sub(rb"\d+(\.\d+)?(ns|\xc2\xb5s|ms|s)\b", b"<took>", out)
        if step.took or step.flex:
            out = re.sub(rb"-+", b"-", re.sub(rb" +", b" ", out))
        if step.flex:  # members are listed by ID, and a random ID sorts anywhere
            out = b"\n".join(sorted(out.split(b"\n")))
        out = re.sub(
            rb'ETCD_INITIAL_CLUSTER="([^"]*)"',
            lambda m: b'ETCD_INITIAL_CLUSTER="' + b",".join(sorted(m.group(1).split(b","))) + b'"',
            out,
        )
        # "Member %16x added": a random ID with leading zero digits is padded with spaces.
        out = re.sub(rb"Member +<id", b"Member <id", out)
        out = re.sub(rb'("dbSize(InUse)?":|"DBSize" : )\d+', rb"\1N", out)
        out = re.sub(rb"\b\d+(\.\d+)? (kB|MB|B)\b", b"<size>", out)
        return out


def _run_to_end(tool: list[str], args: list[str], stdin: str, env: dict[str, str], timeout: float) -> Result:
    """Run a command to its end. One that hangs is sent SIGABRT first: a Python tool
    (PYTHONFAULTHANDLER) then prints every thread's stack, which the failure shows."""
    proc = subprocess.Popen(
        [*tool, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**env, "PYTHONFAULTHANDLER": "1"}, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(stdin.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        raise AssertionError(
            f"{args} did not end within {timeout} s; its stderr after SIGABRT:\n"
            + err.decode(errors="replace")
        ) from None
    return Result(args, proc.returncode, out, err)


def run_tool(
    tool: list[str],
    args: list[str],
    stdin: str,
    env: dict[str, str],
    until: str | None,
    timeout: float = 30.0,
) -> Result:
    full_env = clean_env({"ETCDCTL_API": "3", "PYTHONPATH": str(ROOT), **env})
    if until is None:
        return _run_to_end(tool, args, stdin, full_env, timeout)
    # Long-running (watch, lock, elect, keep-alive): wait for the marker, then interrupt.
    proc2 = subprocess.Popen(
        [*tool, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=full_env, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    assert proc2.stdout is not None and proc2.stdin is not None
    if stdin:  # interactive input; stdin stays open (EOF would end `watch -i`)
        proc2.stdin.write(stdin.encode())
        proc2.stdin.flush()
    os.set_blocking(proc2.stdout.fileno(), False)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        marker = re.compile(until.encode())
        while not marker.search(out) and proc2.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{args}: {until!r} not seen in output {out!r}")
            chunk = proc2.stdout.read()
            if chunk:
                out += chunk
            else:
                time.sleep(0.02)
        if proc2.poll() is None:
            proc2.send_signal(signal.SIGINT)
            # Let it exit before stdin closes: EOF would race with the signal in `watch -i`.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc2.wait(timeout=timeout)
        rest, err = proc2.communicate(timeout=timeout)
        return Result(args, proc2.returncode, out + (rest or b""), err or b"")
    finally:
        if proc2.poll() is None:
            os.killpg(proc2.pid, signal.SIGKILL)
            proc2.wait()


def run_script(tool: list[str], cluster: ProcessCluster, scratch: Path, dead: int, peer: str) -> list[Result]:
    results: list[Result] = []
    try:  # the cluster is wiped (every process killed) however this ends
        cluster.start()
        cluster.wait_healthy()
        ids = set(cluster.ids(0))
        values = {"ep": cluster.endpoints[0], "tmp": str(scratch), "dead": str(dead), "peer": peer}
        norm = Normaliser(keep=ids)
        for step in SCRIPT:
            text = step.args.format(**values)
            args = shlex.split(text)
            if step.endpoints:
                args = [f"--endpoints={values['ep']}", *args]
            env = {k: v.format(**values) for k, v in step.env.items()}
            r = run_tool(tool, args, step.stdin, env, step.until)
            if step.capture is not None:
                m = re.search(step.capture[1], r.stdout.decode(errors="replace"))
                assert m is not None, f"{text}: nothing to capture in {r.stdout!r} / {r.stderr!r}"
                values[step.capture[0]] = m.group(1)
                norm.learn(int(m.group(1), 16))
            results.append(Result(args, r.returncode, norm(r.stdout, step), r.stderr))
    finally:
        cluster.wipe()
        for p in scratch.glob("snap.db*"):
            p.unlink()
    return results


def compare(expected: list[Result], actual: list[Result], steps: list[Step]) -> list[str]:
    problems = []
    for step, e, a in zip(steps, expected, actual, strict=True):
        if e.returncode != a.returncode or e.stdout != a.stdout:
            problems.append(
                f"$ {step.args}\n  exit: etcdctl {e.returncode}, minietcdctl {a.returncode}\n"
                f"  etcdctl stdout:     {e.stdout!r}\n  minietcdctl stdout: {a.stdout!r}\n"
                f"  etcdctl stderr:     {e.stderr[-300:]!r}\n  minietcdctl stderr: {a.stderr[-300:]!r}"
            )
    return problems


@pytest.fixture(scope="module")
def etcdctl() -> str:
    return require_binary(ETCDCTL)


def test_script_matches_etcdctl(etcdctl: str, tmp_path: Path) -> None:
    ports = free_ports(2)
    dead, spare_peer = free_ports(2)
    peer = f"http://127.0.0.1:{spare_peer}"
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def fresh() -> ProcessCluster:
        return client_test_cluster(tmp_path / "etcd", 1, ports=ports)

    reference = run_script([etcdctl], fresh(), scratch, dead, peer)
    ours = run_script(MINIETCDCTL, fresh(), scratch, dead, peer)
    problems = compare(reference, ours, SCRIPT)
    assert not problems, f"{len(problems)} of {len(SCRIPT)} commands differ:\n\n" + "\n\n".join(problems)


# ------------------------------------------------------------------------- live cluster

LIVE: list[Step] = [
    *each_format("member list"),
    *each_format("endpoint status --cluster"),
    Step("endpoint status -w table", endpoints=False),  # all three endpoints, one row each
    *each_format("endpoint hashkv --cluster"),
    Step("get foo --consistency=s -w json"),
    Step("get foo -w fields"),
    Step("endpoint health -w json", took=True),
    Step("alarm list -w json"),
]


@pytest.fixture
def live_cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with client_test_cluster(tmp_path / "live", 3) as cluster:
        cluster.start()
        cluster.wait_healthy()
        yield cluster


@pytest.mark.cluster
def test_live_cluster_read_only_commands_match(etcdctl: str, live_cluster: ProcessCluster) -> None:
    eps = ",".join(live_cluster.endpoints)
    leader = live_cluster.wait_healthy()
    seed = run_tool([etcdctl], [f"--endpoints={eps}", "put", "foo", "bar"], "", {}, None)
    assert seed.returncode == 0, seed.stderr
    # Wait until every member applied the write, so serializable reads agree.
    _wait(lambda: all(_serializable_get(etcdctl, ep) == b"foo\nbar\n" for ep in live_cluster.endpoints))
    ids = {x for i in range(3) for x in live_cluster.ids(i)}
    problems = []
    for i, step in enumerate(LIVE):
        ep = live_cluster.endpoints[(leader + i) % 3]
        args = shlex.split(step.args)
        # One endpoint per command: which member answers a multi-endpoint etcdctl is up to
        # gRPC's balancer, and the response header names it.
        args = [f"--endpoints={eps if not step.endpoints else ep}", *args]
        e = run_tool([etcdctl], args, step.stdin, {}, None)
        a = run_tool(MINIETCDCTL, args, step.stdin, {}, None)
        norm = Normaliser(keep=ids)
        e.stdout, a.stdout = norm(e.stdout, step), Normaliser(keep=ids)(a.stdout, step)
        problems += compare([e], [a], [step])
    assert not problems, "\n\n".join(problems)


@pytest.mark.cluster
def test_move_leader_matches(etcdctl: str, live_cluster: ProcessCluster) -> None:
    """Both tools move leadership from the same leader to the same member (the harness moves it
    back in between)."""
    eps = ",".join(live_cluster.endpoints)
    leader = live_cluster.wait_healthy()
    target = (leader + 1) % 3
    target_id = f"{live_cluster.member_id(target):x}"
    outputs = []
    for tool in ([etcdctl], MINIETCDCTL):
        r = run_tool(tool, [f"--endpoints={eps}", "move-leader", target_id], "", {}, None)
        outputs.append((r.returncode, r.stdout))
        _wait(lambda: live_cluster.wait_healthy() == target)
        back = run_tool(
            [etcdctl],
            [f"--endpoints={eps}", "move-leader", f"{live_cluster.member_id(leader):x}"],
            "",
            {},
            None,
        )
        assert back.returncode == 0, back.stderr
        _wait(lambda: live_cluster.wait_healthy() == leader)
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == 0 and b"Leadership transferred from" in outputs[0][1]


def _serializable_get(etcdctl: str, ep: str) -> bytes:
    return run_tool([etcdctl], [f"--endpoints={ep}", "get", "foo", "--consistency=s"], "", {}, None).stdout


def _wait(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.05)


def test_normaliser_names_whole_ids_and_leaves_small_numbers() -> None:
    norm = Normaliser(keep={0x8E9E05C52164694D})
    step = Step("lock mylock")
    # An etcd lease ID whose clock part spells eleven decimal digits is still one ID.
    assert norm(b"mylock/1fe7a12345678901\n", step) == b"mylock/<id1>\n"
    assert norm(b'{"ID":7587873416312578060,"revision":12}', step) == b'{"ID":<id2>,"revision":12}'
    assert norm(b"member 8e9e05c52164694d", step) == b"member 8e9e05c52164694d"  # the same in both runs
    assert norm(b"lease 1fe7a12345678901 granted", step) == b"lease <id1> granted"
