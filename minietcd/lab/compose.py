"""Lab clusters whose members are containers: ``minietcd-lab --compose ...`` (docs/compose.md).

``ComposeCluster.up(lab_dir, spec)`` writes the compose file of ``spec.size`` members
(``minietcd.lab.compose_file``, the same file ``scripts/compose-cluster.py`` writes, with the
lab's timings added to every member's flags) to ``<lab dir>/docker-compose.yml``, runs
``compose up -d`` under a project name of its own and waits until the members, asked through
their published client ports, agree on a leader and serve a linearizable read. It records the
project in ``<lab dir>/compose.json`` and the members and links in ``<lab dir>/lab.json`` (the
local lab's ``LabState``), so later invocations find it, and ``down`` removes exactly that project
(``compose down -v``, then anything still carrying its label).

Faults map to Docker and to the project's Toxiproxy:

* kill / restart / pause / resume: ``docker kill`` / ``docker start`` / ``docker pause`` /
  ``docker unpause`` of the member's container (by id; the containers' ``restart: unless-stopped``
  does not bring back a container stopped by ``docker kill``);
* replacing a member (``minietcd.lab.membership``, for ``replace`` and chaos' member-replace):
  the wipe is ``docker rm -f`` of its container and ``docker volume rm`` of its data volume (its
  output kept in ``logs/nI.earlier.log``), the start after it writes the file again with
  ``--initial-cluster-state=existing`` for that member and runs ``compose up -d --no-deps nI``;
* links: proxy ``nI-nJ`` carries what nI sends to nJ; the toxiproxy service's API is published on
  127.0.0.1:28474 + the port offset and driven through ``minietcd.lab.links.Links``, exactly as
  for a local cluster.

The compose implementation is ``$MINIETCD_COMPOSE`` (``docker compose`` or ``docker-compose``),
else the v2 plugin if ``docker compose version`` works, else ``docker-compose`` (v1); the one
chosen by ``up`` is recorded and used for the rest of the cluster's life. Images: members run
``$MINIETCD_IMAGE`` (default minietcd:latest, built by scripts/build-offline-images.sh);
Toxiproxy runs ``$TOXIPROXY_IMAGE``, else the official image if Docker has it, else the
minietcd image's Toxiproxy-compatible fault proxy (no registry needed).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minietcd.errors import LabError
from minietcd.lab import backend, compose_file, probe
from minietcd.lab.cluster import ClusterSpec
from minietcd.lab.ids import member_id
from minietcd.lab.links import Links
from minietcd.lab.membership import MembershipChanges
from minietcd.lab.ports import port_in_use
from minietcd.lab.state import HOST, LabState, LinkState, MemberState

COMPOSE_ENV = "MINIETCD_COMPOSE"
IMAGE_ENV = "MINIETCD_IMAGE"
TOXIPROXY_IMAGE_ENV = "TOXIPROXY_IMAGE"
STATE_FILE = "compose.json"
COMPOSE_FILE = "docker-compose.yml"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_OFFSET_STEP = 100  # port offsets tried: 0, 100, ... (2I379 + offset stays clear of 2(I+1)379)
_UP_TIMEOUT = 300.0
_DOWN_TIMEOUT = 180.0
_DOCKER_TIMEOUT = 60.0
_POLL = 0.05


def _reason(text: str) -> str:
    """The line of a tool's output that says what went wrong: the last one that mentions an
    error (compose prints progress lines first), else the first line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return errors[-1] if errors else (lines[0] if lines else "")


def run_tool(
    args: Sequence[str], *, timeout: float = _DOCKER_TIMEOUT, env: Mapping[str, str] | None = None
) -> str:
    """Run docker / compose; its stdout, or a one-line LabError saying what went wrong."""
    try:
        proc = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed (docs/compose.md; CI: scripts/ci-docker.sh)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(args)}` did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        why = _reason(proc.stderr) or _reason(proc.stdout) or f"exit status {proc.returncode}"
        shown = shlex.join(args[:4]) + (" ..." if len(args) > 4 else "")
        raise LabError(f"`{shown}` failed: {why}")
    return proc.stdout


def compose_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """``$MINIETCD_COMPOSE``, else ``docker compose`` (v2) if it works, else ``docker-compose``."""
    env = os.environ if environ is None else environ
    wanted = env.get(COMPOSE_ENV, "").strip()
    if wanted:
        command = shlex.split(wanted)
        try:
            run_tool([*command, "version"], timeout=30)
        except LabError as e:
            raise LabError(f"{COMPOSE_ENV}={wanted!r} does not work: {e}") from None
        return command
    if shutil.which("docker") is not None:
        with contextlib.suppress(LabError):
            run_tool(["docker", "compose", "version"], timeout=30)
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    raise LabError("neither `docker compose` (v2 plugin) nor `docker-compose` is installed (docs/compose.md)")


def check_docker() -> None:
    """A LabError unless docker is installed and its daemon answers."""
    if shutil.which("docker") is None:
        raise LabError("docker is not installed (docs/compose.md; CI: scripts/ci-docker.sh)")
    try:
        run_tool(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    except LabError as e:
        raise LabError(f"the Docker daemon is not reachable: {e}") from None


def image_exists(image: str) -> bool:
    try:
        run_tool(["docker", "image", "inspect", "--format", "{{.Id}}", image])
    except LabError:
        return False
    return True


def choose_images(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(members' image, Toxiproxy's image), as described in the module docstring."""
    env = os.environ if environ is None else environ
    image = env.get(IMAGE_ENV) or compose_file.DEFAULT_IMAGE
    if not image_exists(image):
        raise LabError(f"no image {image}: build it with scripts/build-offline-images.sh (docs/compose.md)")
    toxiproxy = env.get(TOXIPROXY_IMAGE_ENV)
    if not toxiproxy:
        official = compose_file.DEFAULT_TOXIPROXY_IMAGE
        toxiproxy = official if image_exists(official) else image
    elif not image_exists(toxiproxy):
        raise LabError(f"{TOXIPROXY_IMAGE_ENV}={toxiproxy}, but Docker has no such image")
    return image, toxiproxy


def _ports_free(ports: Iterable[int]) -> bool:
    """Whether a listener could bind every port now. SO_REUSEADDR as docker-proxy (Go) sets it:
    connections of a cluster just removed, in TIME_WAIT, do not keep its ports from the next."""
    return not any(port_in_use(port) for port in ports)


def choose_port_offset(size: int) -> int:
    """The first offset (0, 100, ...) at which every host port a SIZE cluster publishes is free."""
    for offset in range(0, min(5000, compose_file.max_port_offset()) + 1, _OFFSET_STEP):
        if _ports_free(compose_file.host_ports_of_cluster(size, offset)):
            return offset
    raise LabError(f"no free set of host ports for a {size}-member compose cluster (tried offsets 0-5000)")


@dataclass(slots=True)
class ComposeState:
    """``<lab dir>/compose.json``: the compose project a lab cluster runs in."""

    project: str
    file: str
    command: list[str]  # the compose implementation, as chosen by `up`
    port_offset: int
    image: str
    toxiproxy_image: str
    containers: dict[str, str] = field(default_factory=dict)  # service -> container id
    flags: list[str] = field(default_factory=list)  # every member's extra flags (to write the file again)

    def env(self) -> dict[str, str]:
        """The environment compose runs in: the images the file interpolates, as at `up`."""
        return {**os.environ, IMAGE_ENV: self.image, TOXIPROXY_IMAGE_ENV: self.toxiproxy_image}

    def save(self, lab_dir: Path) -> None:
        path = Path(lab_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @staticmethod
    def load(lab_dir: Path) -> ComposeState:
        path = Path(lab_dir) / STATE_FILE
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return ComposeState(
                project=str(data["project"]),
                file=str(data["file"]),
                command=[str(c) for c in data["command"]],
                port_offset=int(data["port_offset"]),
                image=str(data["image"]),
                toxiproxy_image=str(data["toxiproxy_image"]),
                containers={str(k): str(v) for k, v in data.get("containers", {}).items()},
                flags=[str(f) for f in data.get("flags", [])],
            )
        except FileNotFoundError:
            raise LabError(f"no compose cluster in {lab_dir}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise LabError(f"{path} is not a compose state file: {e}") from None


def is_compose_lab(lab_dir: Path) -> bool:
    return (Path(lab_dir) / STATE_FILE).exists()


def compose_args(cs: ComposeState, *args: str) -> list[str]:
    return [*cs.command, "-f", cs.file, "-p", cs.project, *args]


def remove_project(cs: ComposeState) -> list[str]:
    """``compose down -v`` of the project; if compose fails (a half-created project), remove what
    carries the project's label by hand. Returns what could not be removed (empty: all gone)."""
    try:
        run_tool(
            compose_args(cs, "down", "-v", "--remove-orphans", "--timeout", "5"),
            timeout=_DOWN_TIMEOUT,
            env=cs.env(),
        )
        return []
    except LabError as e:
        first = str(e)
    errors: list[str] = []
    label = f"label={PROJECT_LABEL}={cs.project}"
    for kind, lister, remover in (
        ("container", ["docker", "ps", "-aq", "--filter", label], ["docker", "rm", "-f", "-v"]),
        ("network", ["docker", "network", "ls", "-q", "--filter", label], ["docker", "network", "rm"]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", label], ["docker", "volume", "rm", "-f"]),
    ):
        try:
            ids = run_tool(lister).split()
            if ids:
                run_tool([*remover, *ids], timeout=_DOWN_TIMEOUT)
        except LabError as e:
            errors.append(f"{kind}s: {e}")
    return [f"compose down: {first}", *errors] if errors else []


def _state_of(status: str) -> str:
    """Docker's container status -> the lab's process state."""
    return {"running": "running", "paused": "paused"}.get(status, "killed")


class ComposeCluster(MembershipChanges):
    """One lab cluster in a compose project (see the module docstring)."""

    def __init__(self, state: LabState, compose: ComposeState) -> None:
        self.state = state
        self.compose = compose
        self.links = Links(state)

    # --- creation and loading ------------------------------------------------------------

    @classmethod
    def up(cls, lab_dir: Path, spec: ClusterSpec, *, timeout: float = 120.0) -> ComposeCluster:
        """Start a compose cluster as ``spec`` says, in ``lab_dir``, and wait
        until it is healthy. On any failure the project is removed again."""
        spec.check()
        if spec.client_proxies:
            raise LabError("--client-proxies is for local clusters: compose clients use the published ports")
        lab_dir = Path(lab_dir).resolve()
        if LabState.exists(lab_dir) or is_compose_lab(lab_dir):
            raise LabError(f"{lab_dir} already holds a cluster: run `minietcd-lab --compose down` first")
        check_docker()
        command = compose_command()
        image, toxiproxy_image = choose_images()
        offset = choose_port_offset(spec.size)
        lab_dir.mkdir(parents=True, exist_ok=True)
        (lab_dir / "logs").mkdir(exist_ok=True)
        flags = [f"--heartbeat-interval={spec.heartbeat_ms}", f"--election-timeout={spec.election_ms}"]
        if spec.pre_vote:
            flags.append("--pre-vote")
        flags.extend(spec.extra_flags)
        file = lab_dir / COMPOSE_FILE
        file.write_text(compose_file.render(spec.size, offset, flags), encoding="utf-8")
        cs = ComposeState(
            project=f"minietcd-lab-{secrets.token_hex(3)}",
            file=str(file),
            command=command,
            port_offset=offset,
            image=image,
            toxiproxy_image=toxiproxy_image,
            flags=flags,
        )
        state = LabState(
            lab_dir=str(lab_dir),
            token=compose_file.token(spec.size),
            heartbeat_ms=spec.heartbeat_ms,
            election_ms=spec.election_ms,
            pre_vote=spec.pre_vote,
            toxiproxy_url=f"http://{HOST}:{compose_file.toxiproxy_host_port(offset)}",
            proxy_prefix="",
            extra_flags=list(spec.extra_flags),
        )
        for i in range(1, spec.size + 1):
            client, metrics = compose_file.host_ports(i, offset)
            state.members.append(
                MemberState(
                    name=f"n{i}",
                    client_port=client,
                    peer_port=compose_file.PEER_PORT,
                    metrics_port=metrics,
                    member_id=member_id([compose_file.peer_url(i)], state.token),
                    data_dir=f"volume {cs.project}_n{i}-data",
                    log_path=str(lab_dir / "logs" / f"n{i}.log"),
                    advertised_peer_url=compose_file.peer_url(i),
                )
            )
            for j in range(1, spec.size + 1):
                if j != i:
                    state.links.append(
                        LinkState(f"n{i}", f"n{j}", f"n{i}-n{j}", compose_file.link_port(i, j))
                    )
        cs.save(lab_dir)  # before anything starts: `down` finds whatever `up` leaves behind
        state.save()
        cluster = cls(state, cs)
        try:
            run_tool(compose_args(cs, "up", "-d"), timeout=_UP_TIMEOUT, env=cs.env())
            cluster._find_containers()
            cluster.wait_healthy(timeout)
            cluster._check_member_ids()
        except BaseException:
            with contextlib.suppress(Exception):
                cluster.down()
            raise
        return cluster

    @classmethod
    def load(cls, lab_dir: Path) -> ComposeCluster:
        lab_dir = Path(lab_dir).resolve()
        return cls(LabState.load(lab_dir), ComposeState.load(lab_dir))

    def _find_containers(self) -> None:
        """Record each service's container id (the same under compose v1 and v2: by label)."""
        out = run_tool(
            [
                "docker", "ps", "-a",
                "--filter", f"label={PROJECT_LABEL}={self.compose.project}",
                "--format", f'{{{{.ID}}}} {{{{.Label "{SERVICE_LABEL}"}}}}',
            ]
        )  # fmt: skip
        found: dict[str, str] = {}
        for line in out.splitlines():
            if len(line.split()) == 2:
                cid, service = line.split()
                found[service] = cid
        missing = [n for n in self.names if n not in found]
        if missing:
            raise LabError(
                f"compose project {self.compose.project} has no container for {', '.join(missing)}"
            )
        self.compose.containers = found
        self.compose.save(Path(self.state.lab_dir))

    def _check_member_ids(self) -> None:
        """The ids computed from the file's peer URLs and token must be the members' own (status
        and the fault table name members by them)."""
        for m in self.members:
            try:
                got = probe.status(m.client_port, timeout=5.0).member_id
            except probe.ProbeError as e:
                raise LabError(f"{m.name} did not answer on {m.client_url}: {e}") from None
            if got != m.member_id:
                raise LabError(f"{m.name} has member id {got:x}, expected {m.member_id:x}")

    # --- members -------------------------------------------------------------------------

    def container(self, name: str) -> str:
        self.member(name)
        cid = self.compose.containers.get(name)
        if cid is None:
            raise LabError(f"no container recorded for {name} in {self.state.lab_dir}")
        return cid

    def process_state(self, name: str) -> str:
        """``running``, ``paused`` (docker pause) or ``killed`` (the container is not running)."""
        try:
            status = run_tool(["docker", "inspect", "--format", "{{.State.Status}}", self.container(name)])
        except LabError:
            return "killed"  # the container is gone
        return _state_of(status.strip())

    def running(self) -> list[str]:
        return [n for n in self.names if self.process_state(n) != "killed"]

    def start(self, name: str) -> None:
        """``docker start`` the member's container (on its volume, which it keeps); a member
        wiped for a replacement gets a new container and volume (``compose up`` of its service,
        with ``--initial-cluster-state=existing`` once it was added back)."""
        if name not in self.compose.containers:
            self._recreate(name)
            return
        if self.process_state(name) != "killed":
            raise LabError(f"{name} is already running (container {self.container(name)[:12]})")
        run_tool(["docker", "start", self.container(name)])

    def _recreate(self, name: str) -> None:
        cs = self.compose
        joining = {
            int(m.name[1:]): ["--initial-cluster-state=existing"]
            for m in self.members
            if m.initial_cluster_state == "existing"
        }
        Path(cs.file).write_text(
            compose_file.render(len(self.members), cs.port_offset, cs.flags, joining), encoding="utf-8"
        )
        run_tool(compose_args(cs, "up", "-d", "--no-deps", name), timeout=_UP_TIMEOUT, env=cs.env())
        self._find_containers()

    def wipe(self, name: str) -> None:
        """Remove member ``name``'s container and its data volume (for a removed member); its
        output so far is kept (``log_bytes``). ``start`` creates both again."""
        cs = self.compose
        self.member(name)
        cid = cs.containers.get(name)
        if cid is not None:
            earlier = self._earlier_log(name)
            with open(earlier, "ab") as f:
                f.write(self._container_log(cid))
            run_tool(["docker", "rm", "-f", cid])
            del cs.containers[name]
            cs.save(Path(self.state.lab_dir))
        run_tool(["docker", "volume", "rm", "-f", f"{cs.project}_{name}-data"])

    def _earlier_log(self, name: str) -> Path:
        """Where the output of the member's earlier containers (before a replacement) is kept."""
        return Path(self.state.lab_dir) / "logs" / f"{name}.earlier.log"

    @staticmethod
    def _container_log(cid: str) -> bytes:
        try:
            proc = subprocess.run(
                ["docker", "logs", cid],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=_DOCKER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return b""
        return proc.stdout

    def log_bytes(self, name: str) -> bytes:
        """Everything member ``name`` wrote: its earlier containers' output, then its current one's."""
        try:
            earlier = self._earlier_log(name).read_bytes()
        except OSError:
            earlier = b""
        cid = self.compose.containers.get(name)
        return earlier + (self._container_log(cid) if cid is not None else b"")

    def kill(self, name: str) -> None:
        """``docker kill`` (SIGKILL) the member's container and wait until it has stopped."""
        if self.process_state(name) == "killed":
            raise LabError(f"{name} is not running")
        run_tool(["docker", "kill", self.container(name)])
        self._wait_state(name, "killed")

    def signal(self, name: str, sig: signal.Signals) -> None:
        """SIGSTOP / SIGCONT: ``docker pause`` / ``docker unpause`` (waited for); SIGKILL: ``kill``;
        any other signal is sent with ``docker kill --signal``."""
        if self.process_state(name) == "killed":
            raise LabError(f"{name} is not running")
        if sig == signal.SIGKILL:
            self.kill(name)
        elif sig == signal.SIGSTOP:
            run_tool(["docker", "pause", self.container(name)])
            self._wait_state(name, "paused")
        elif sig == signal.SIGCONT:
            run_tool(["docker", "unpause", self.container(name)])
            self._wait_state(name, "running")
        else:
            run_tool(["docker", "kill", "--signal", sig.name, self.container(name)])

    def _wait_state(self, name: str, wanted: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (st := self.process_state(name)) != wanted:
            if time.monotonic() >= deadline:
                raise LabError(f"{name} is still {st} after {timeout:.0f}s (wanted {wanted})")
            time.sleep(_POLL)

    # --- waiting and describing ----------------------------------------------------------

    def wait_healthy(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> str:
        return backend.wait_healthy(self, timeout, names)

    def logs(self, name: str, lines: int | None = None) -> str:
        """The container's output (stdout and stderr), the last ``lines`` lines if given."""
        tail = [] if lines is None else ["--tail", str(lines)]
        try:
            proc = subprocess.run(
                ["docker", "logs", *tail, self.container(name)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=_DOCKER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired, LabError) as e:
            return f"<no logs of {name}: {e}>"
        return proc.stdout

    def log_tails(self, lines: int = 20) -> str:
        return "\n".join(
            f"----- {n} (docker logs {self.compose.containers.get(n, '?')[:12]}) -----\n"
            + self.logs(n, lines).rstrip()
            for n in self.names
        )

    # --- teardown ------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Save every member's log to ``<lab dir>/logs/nI.log``, remove the compose project with
        its volumes, then the state files. Returns what was running."""
        stopped = [n for n in self.names if self.compose.containers and self.process_state(n) != "killed"]
        for m in self.members:
            with contextlib.suppress(OSError):
                Path(m.log_path).write_bytes(self.log_bytes(m.name))
        errors = remove_project(self.compose)
        if errors:
            raise LabError(f"down left parts of project {self.compose.project} behind: " + "; ".join(errors))
        lab_dir = Path(self.state.lab_dir)
        with contextlib.suppress(FileNotFoundError):
            self.state.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (lab_dir / STATE_FILE).unlink()
        return [*stopped, f"toxiproxy (project {self.compose.project})"]
