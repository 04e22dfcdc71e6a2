"""docker compose clusters of 1..9 members (docker-compose.yml, scripts/compose-cluster.py, docs/compose.md).

Needs a running Docker daemon and docker compose (the v2 plugin, or Debian's docker-compose v1).
In CI (``$CI`` set) a missing one is a failure: scripts/ci-docker.sh must have installed them; this
module installs nothing. Elsewhere the tests skip, saying what is missing.

The images are built first by scripts/build-offline-images.sh (no registry needed; a few seconds
when nothing changed); ``MINIETCD_COMPOSE_SKIP_BUILD=1`` uses minietcd:latest as it is.
``MINIETCD_COMPOSE`` picks the compose command (``docker compose`` or ``docker-compose``; default:
the v2 plugin if present). Toxiproxy is the lab's fault proxy in the minietcd image unless
``$TOXIPROXY_IMAGE`` says otherwise (the official image needs a registry).

Every cluster is a compose project of its own, torn down with ``down -v`` even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from minietcd.lab.compose import ComposeState, choose_port_offset, remove_project
from tests.compose.docker_env import REPO, Tools, run

pytestmark = [pytest.mark.compose, pytest.mark.slow]

GENERATOR = REPO / "scripts" / "compose-cluster.py"
HEALTHY_TIMEOUT = 120.0  # seconds for a whole cluster to turn healthy (9 members: ~15 s here)


def _load_generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_cluster", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@dataclass
class Cluster:
    tools: Tools
    size: int
    project: str
    file: Path
    port_offset: int
    ids: dict[str, str] = field(default_factory=dict)  # member name -> container id

    @property
    def members(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.size + 1)]

    def compose(
        self, *args: str, timeout: float = 180.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [*self.tools.compose, "-f", str(self.file), "-p", self.project, *args]
        return run(cmd, timeout=timeout, env=self.tools.env, check=check)

    def client_endpoint(self, name: str) -> str:
        return f"127.0.0.1:{gen.host_ports(int(name[1:]), self.port_offset)[0]}"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{gen.host_ports(int(name[1:]), self.port_offset)[1]}"

    @property
    def toxiproxy_url(self) -> str:
        return f"http://127.0.0.1:{gen.toxiproxy_host_port(self.port_offset)}"

    def etcdctl(self, *args: str, endpoints: list[str] | None = None, timeout: float = 30.0) -> str:
        eps = ",".join(self.client_endpoint(n) for n in (endpoints or self.members))
        cmd = [*self.tools.etcdctl, f"--endpoints={eps}", "--command-timeout=10s", *args]
        return run(cmd, timeout=timeout, env={**self.tools.env, "ETCDCTL_API": "3"}).stdout

    def health(self, name: str) -> bool | None:
        """/health of a member through its published metrics port; None if it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.metrics_url(name)}/health", timeout=2) as r:
                return bool(json.load(r)["health"] == "true")
        except urllib.error.HTTPError as e:
            return False if e.code == 503 else None
        except OSError:
            return None

    def health_inside(self, name: str) -> bool | None:
        """/health asked inside the container: works while it is cut off from every network."""
        probe = (
            "import urllib.request, urllib.error\n"
            "try:\n"
            "    urllib.request.urlopen('http://127.0.0.1:2381/health', timeout=2); print('true')\n"
            "except urllib.error.HTTPError:\n"
            "    print('false')\n"
        )
        out = run(["docker", "exec", self.ids[name], "python3", "-c", probe], check=False).stdout.strip()
        return {"true": True, "false": False}.get(out)

    def docker_health(self, name: str) -> str:
        return run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", self.ids[name]], check=False
        ).stdout.strip()

    def set_link(self, src: str, dst: str, enabled: bool) -> None:
        body = json.dumps({"enabled": enabled}).encode()
        req = urllib.request.Request(f"{self.toxiproxy_url}/proxies/{src}-{dst}", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200, r.status

    def network(self, name: str) -> str:
        out = run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", self.ids[name]]).stdout
        networks = list(json.loads(out))
        assert len(networks) == 1, networks
        return str(networks[0])

    def leader(self) -> str:
        out = self.etcdctl("endpoint", "status", "-w", "json")
        for status in json.loads(out):
            header = status["Status"]["header"]
            if status["Status"]["leader"] == header["member_id"]:
                port = int(status["Endpoint"].rsplit(":", 1)[1])
                return next(n for n in self.members if self.client_endpoint(n).endswith(f":{port}"))
        raise AssertionError(f"no leader in {out}")

    def wait_healthy(self, names: list[str] | None = None, timeout: float = HEALTHY_TIMEOUT) -> float:
        """Wait for Docker's health check (python3 + /health) to pass on ``names``; the seconds taken."""
        names = names or self.members
        start = time.monotonic()
        while True:
            states = {n: self.docker_health(n) for n in names}
            if all(s == "healthy" for s in states.values()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"not healthy after {timeout:.0f}s: {states}")
            time.sleep(1)


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - start


def retry(what: str, action: Callable[[], str], timeout: float = 30.0) -> str:
    """``action()``'s result once it stops failing (elections, reconnects take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except (AssertionError, subprocess.TimeoutExpired) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {timeout:.0f}s: {e}") from e
            time.sleep(1)


def _teardown(cluster: Cluster) -> None:
    """compose down -v; by the project's label if compose fails (minietcd.lab.compose does it)."""
    state = ComposeState(
        project=cluster.project,
        file=str(cluster.file),
        command=cluster.tools.compose,
        port_offset=cluster.port_offset,
        image=cluster.tools.env["MINIETCD_IMAGE"],
        toxiproxy_image=cluster.tools.env["TOXIPROXY_IMAGE"],
    )
    left = remove_project(state)
    if left:  # printed, not raised: a teardown error must not hide the test's own failure
        print(f"!!! project {cluster.project} left behind: {left}")


@contextlib.contextmanager
def compose_cluster(tools: Tools, size: int, tmp_path: Path) -> Iterator[Cluster]:
    # Published ports: 2I379 / 2I381 / 28474 unless taken (a user's own cluster): then shift them.
    offset = choose_port_offset(size)
    file = tmp_path / f"docker-compose.size{size}.yml"
    run([sys.executable, str(GENERATOR), "--size", str(size), "--port-offset", str(offset), "-o", str(file)])
    cluster = Cluster(tools, size, f"minietcd-test{os.getpid()}-{size}", file, offset)
    started = time.monotonic()
    try:
        cluster.compose("up", "-d")
        for name in cluster.members:
            cid = cluster.compose("ps", "-q", name).stdout.strip()
            assert cid, f"no container for {name}"
            cluster.ids[name] = cid
        took = cluster.wait_healthy()
        total = time.monotonic() - started
        print(f"compose {size} members: up and healthy in {total:.1f}s (waited {took:.1f}s for health)")
        yield cluster
    except BaseException:
        with contextlib.suppress(Exception):
            logs = cluster.compose("logs", "--no-color", "--tail", "40", check=False, timeout=60)
            print(f"--- compose logs ({cluster.project}) ---\n{logs.stdout}{logs.stderr}")
        raise
    finally:
        _teardown(cluster)


def test_committed_compose_file_is_the_generated_one() -> None:
    """docker-compose.yml is generated (--size 3); an edit by hand would be lost on the next run."""
    assert (REPO / "docker-compose.yml").read_text(encoding="utf-8") == gen.render(3), (
        "docker-compose.yml differs from `python3 scripts/compose-cluster.py --size 3`: regenerate it"
    )


def test_generated_files_are_valid_compose(tools: Tools, tmp_path: Path) -> None:
    """Every size 1..9 passes `compose config`, with exactly its members, links and volumes."""
    for size in range(1, gen.MAX_SIZE + 1):
        file = tmp_path / f"c{size}.yml"
        file.write_text(gen.render(size), encoding="utf-8")
        cmd = [*tools.compose, "-f", str(file), "-p", "config-check", "config", "--services"]
        services = set(run(cmd, env=tools.env).stdout.split())
        assert services == {"toxiproxy", "toxiproxy-links"} | {f"n{i}" for i in range(1, size + 1)}


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_cluster_of_size(tools: Tools, tmp_path: Path, size: int) -> None:
    with compose_cluster(tools, size, tmp_path) as c:
        # Healthy means a leader exists; each member publishes its name through the log just
        # after (etcd lists it as "unstarted", without a name, until then). Wait for that.
        deadline = time.monotonic() + HEALTHY_TIMEOUT
        while True:
            members = json.loads(c.etcdctl("member", "list", "-w", "json"))["members"]
            if all(m.get("name") for m in members) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted(m.get("name", "") for m in members) == c.members
        peer_urls = sorted(u for m in members for u in m["peerURLs"])
        assert peer_urls == sorted(f"http://{n}:2380" for n in c.members)
        # Written through the first member, read (linearizably) through every member.
        # Retried: under load a put can time out ("request timed out"); writing the same value
        # again is harmless whether or not the first one took effect.
        put = retry("put through n1", lambda: c.etcdctl("put", "greeting", f"hello {size}", endpoints=["n1"]))
        assert put.strip() == "OK"
        for name in c.members:
            value = c.etcdctl("get", "greeting", "--print-value-only", endpoints=[name])
            assert value.strip() == f"hello {size}", name
        assert all(c.health(n) for n in c.members)


def test_three_members_partition_kill_and_disconnect(tools: Tools, tmp_path: Path) -> None:
    with compose_cluster(tools, 3, tmp_path) as c:
        assert c.etcdctl("put", "k0", "v0").strip() == "OK"

        # 1. Peer traffic really goes through Toxiproxy: disabling n3's links cuts n3 off.
        links = [("n3", "n1"), ("n3", "n2"), ("n1", "n3"), ("n2", "n3")]
        for src, dst in links:
            c.set_link(src, dst, enabled=False)
        wait_for("n3 to lose its leader behind disabled proxies", lambda: c.health("n3") is False)
        # Retried: if n3 led, n1 may still forward this put to it for up to an election timeout
        # (its loss is not seen yet), and a forwarded proposal that is lost ends in "request
        # timed out", as on etcd. Writing the same value again is harmless.
        put = retry("put while n3 is cut off", lambda: c.etcdctl("put", "k1", "v1", endpoints=["n1", "n2"]))
        assert put.strip() == "OK"
        for src, dst in links:
            c.set_link(src, dst, enabled=True)
        wait_for("n3 healthy again after the proxies are back", lambda: c.health("n3") is True)
        assert c.etcdctl("get", "k1", "--print-value-only", endpoints=["n3"]).strip() == "v1"

        # 2. Kill the leader's container: the other two elect a leader and take writes.
        leader = c.leader()
        others = [n for n in c.members if n != leader]
        run(["docker", "kill", c.ids[leader]])
        out = retry("put after killing the leader", lambda: c.etcdctl("put", "k2", "v2", endpoints=others))
        assert out.strip() == "OK"
        assert c.etcdctl("get", "k2", "--print-value-only", endpoints=others).strip() == "v2"
        run(["docker", "start", c.ids[leader]])
        c.wait_healthy([leader])
        value = retry("read on the restarted member", lambda: c.etcdctl("get", "k2", endpoints=[leader]))
        assert value.split() == ["k2", "v2"]

        # 3. Take a follower off the Docker network: it drops out, the rest carry on.
        follower = next(n for n in c.members if n != c.leader())
        rest = [n for n in c.members if n != follower]
        network = c.network(follower)
        run(["docker", "network", "disconnect", network, c.ids[follower]])
        wait_for(f"{follower} to lose its leader off the network", lambda: c.health_inside(follower) is False)
        assert c.etcdctl("put", "k3", "v3", endpoints=rest).strip() == "OK"
        run(["docker", "network", "connect", "--alias", follower, network, c.ids[follower]])
        wait_for(f"{follower} healthy after reconnecting", lambda: c.health(follower) is True, timeout=60)
        value = retry("catch-up read", lambda: c.etcdctl("get", "k3", endpoints=[follower]))
        assert value.split() == ["k3", "v3"]
