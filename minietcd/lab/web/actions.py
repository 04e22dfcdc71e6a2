"""The page's controls: each one is the lab call the matching ``minietcd-lab`` command makes.

An action is a JSON object such as ``{"action": "isolate", "members": ["n1"]}``. :func:`plan`
checks it and returns what to show (``isolate n1``), the command a person would type for the
same thing (``minietcd-lab isolate n1``) and the blocking call to make; :class:`Actions` runs
it in a worker thread (one at a time: the lab's commands are not meant to race either) and
marks its start and end in the story. The cluster is loaded from the lab dir for every action,
exactly as every CLI invocation does.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from minietcd.errors import LabError
from minietcd.lab import controls
from minietcd.lab.backend import LabCluster, load_cluster
from minietcd.lab.cluster import MAX_SIZE, Cluster, ClusterSpec
from minietcd.lab.faults import Faults
from minietcd.lab.ports import PortPlan
from minietcd.lab.state import LabState
from minietcd.lab.web.collector import Stage
from minietcd.lab.web.picture import NORMAL_PACE, TEACH_PACE

PACES: Final = {"teach": TEACH_PACE, "normal": NORMAL_PACE}
UP_TIMEOUT: Final = 120.0
# The longest an action is waited for: starting a cluster takes up to UP_TIMEOUT to come up and
# as long again to elect; anything else takes seconds. Past it the action is reported failed
# (the lab call may go on in its worker thread; nobody waits for it any longer).
ACTION_BOUND: Final = 2 * UP_TIMEOUT + 30


@dataclass(slots=True, frozen=True)
class Planned:
    text: str  # "isolate n1"
    cli: str  # "minietcd-lab isolate n1"
    call: Callable[[], str]  # does it (blocking); returns what came of it


def _names(spec: Mapping[str, Any], key: str = "members") -> list[str]:
    value = spec.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x for x in value):
        raise LabError(f"{spec.get('action')}: give {key} as a list of member names")
    return list(value)


def _str(spec: Mapping[str, Any], key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise LabError(f"{spec.get('action')}: {key} is missing")
    return value


def _int(spec: Mapping[str, Any], key: str, default: int) -> int:
    try:
        return int(spec.get(key, default))
    except (TypeError, ValueError):
        raise LabError(f"{spec.get('action')}: {key} must be a whole number") from None


class Lab:
    """The lab dir the page works on (compose clusters are driven but never started here)."""

    def __init__(self, lab_dir: Path, compose: bool = False, ports: PortPlan | None = None) -> None:
        self.lab_dir = Path(lab_dir)
        self.compose = compose
        self.ports = ports  # --port-base: the clusters the page starts take their ports from it

    def cluster(self) -> LabCluster:
        return load_cluster(self.lab_dir)

    def faults(self) -> Faults:
        return Faults(self.cluster())

    def up(self, size: int, pace: str) -> str:
        if self.compose:
            raise LabError("the page starts local clusters only: use `minietcd-lab --compose up`")
        if LabState.exists(self.lab_dir):
            self.cluster().down()
        hb, el = PACES[pace]
        spec = ClusterSpec(size=size, heartbeat_ms=hb, election_ms=el, ports=self.ports)
        cluster = Cluster.up(self.lab_dir, spec, detach=True, timeout=UP_TIMEOUT)
        return f"{size}-member cluster up (leader {cluster.wait_healthy(UP_TIMEOUT)})"


def plan(lab: Lab, spec: Mapping[str, Any]) -> Planned:
    """What ``spec`` asks for, checked (LabError: bad request), not done yet."""
    action = spec.get("action")
    if action in ("kill", "restart", "pause", "resume", "isolate"):
        names = _names(spec)
        verb = {"kill": "killed", "restart": "restarted", "pause": "paused", "resume": "resumed",
                "isolate": "isolated"}[action]
        method: Callable[[Faults, Sequence[str]], None] = getattr(Faults, action)

        def run_member() -> str:
            method(lab.faults(), names)
            return f"{verb}: {', '.join(names)}"

        return Planned(f"{action} {' '.join(names)}", f"minietcd-lab {action} {' '.join(names)}", run_member)
    if action == "partition":
        groups = spec.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, list) and g for g in groups):
            raise LabError('partition: give groups as lists of member names, e.g. [["n1"], ["n2", "n3"]]')
        words = " ".join(",".join(str(n) for n in g) for g in groups)

        def run_partition() -> str:
            full = lab.faults().partition([[str(n) for n in g] for g in groups])
            return "partitioned: " + " | ".join(",".join(g) for g in full)

        return Planned(f"partition {words}", f"minietcd-lab partition {words}", run_partition)
    if action in ("heal", "reset"):
        def run_heal() -> str:
            f = lab.faults()
            if action == "heal":
                f.heal()
                return "healed: every link enabled"
            f.reset()
            return "reset: links enabled, toxics removed, paused members resumed"

        return Planned(str(action), f"minietcd-lab {action}", run_heal)
    if action in ("slow", "flaky", "blackhole", "clear"):
        return _plan_link(lab, spec, str(action))
    if action == "put":
        key, value = _str(spec, "key"), str(spec.get("value", ""))
        via = spec.get("via") if isinstance(spec.get("via"), str) else None

        def run_put() -> str:
            timeout = float(spec.get("timeout", controls.PUT_TIMEOUT))
            r = controls.put(lab.cluster(), key, value, via=via, timeout=timeout)
            return f"put {key} through {r.via}: revision {r.revision}"

        where = f" through {via}" if via else ""
        cli = f"etcdctl put {shlex.quote(key)} {shlex.quote(value)}"
        return Planned(f"put {key}={value}{where}", cli, run_put)
    if action == "transfer":
        target = _str(spec, "to")

        def run_transfer() -> str:
            was = controls.transfer_leader(lab.cluster(), target)
            return f"leadership moved: {was} -> {target}"

        return Planned(f"transfer leadership to {target}", f"minietcd-lab transfer {target}", run_transfer)
    if action in ("remove", "add"):
        name = _str(spec, "member")

        def run_membership() -> str:
            if action == "remove":
                rep = controls.remove_member(lab.cluster(), name)
                return f"removed {name} ({rep.old_id:x}) through {rep.removed_via}"
            rep = controls.add_member(lab.cluster(), name)
            return f"added {name} back as {rep.new_id:x} through {rep.added_via}"

        return Planned(f"{action} member {name}", f"minietcd-lab {action} {name}", run_membership)
    if action == "up":
        size = _int(spec, "size", 3)
        pace = str(spec.get("pace", "teach"))
        if not 1 <= size <= MAX_SIZE:
            raise LabError(f"up: a lab cluster has 1 to {MAX_SIZE} members, not {size}")
        if pace not in PACES:
            raise LabError(f"up: pace is one of {', '.join(PACES)}")
        return Planned(f"start a {size}-member cluster ({pace} pace)",
                       f"minietcd-lab up --size {size} --pace {pace}", lambda: lab.up(size, pace))
    if action == "down":
        def run_down() -> str:
            stopped = lab.cluster().down()
            return "stopped: " + (", ".join(stopped) if stopped else "nothing was running")

        return Planned("stop the cluster", "minietcd-lab down", run_down)
    raise LabError(f"unknown action {action!r}")


def _plan_link(lab: Lab, spec: Mapping[str, Any], action: str) -> Planned:
    src, dst = _str(spec, "src"), _str(spec, "dst")
    link = f"{src}->{dst}"
    if action == "slow":
        latency, jitter = _int(spec, "latency", 200), _int(spec, "jitter", 0)

        def run_slow() -> str:
            lab.faults().slow((src, dst), latency, jitter)
            return f"slowed {link}: {latency}ms ± {jitter}ms"

        return Planned(f"slow {link} {latency}ms", f"minietcd-lab slow {src} {dst} --latency {latency}ms "
                       f"--jitter {jitter}ms", run_slow)
    if action == "flaky":
        try:
            p = float(spec.get("probability", 0.3))
        except (TypeError, ValueError):
            raise LabError("flaky: probability must be a number") from None

        def run_flaky() -> str:
            lab.faults().flaky((src, dst), p)
            return f"flaky {link}: {p:.0%} of connections blackholed"

        return Planned(f"flaky {link} {p:.0%}", f"minietcd-lab flaky {src} {dst} -p {p:g}", run_flaky)
    if action == "blackhole":
        def run_blackhole() -> str:
            lab.faults().blackhole((src, dst))
            return f"blackholed {link}"

        return Planned(f"blackhole {link}", f"minietcd-lab blackhole {src} {dst}", run_blackhole)

    def run_clear() -> str:
        n = lab.faults().clear((src, dst))
        return f"cleared {link}: {n} toxic(s) removed"

    return Planned(f"clear {link}", f"minietcd-lab clear {src} {dst}", run_clear)


@dataclass(slots=True, frozen=True)
class Outcome:
    ok: bool
    text: str
    cli: str
    seconds: float


class Actions:
    """Runs planned actions one at a time, marked in the stage's story."""

    def __init__(self, lab: Lab, stage: Stage) -> None:
        self.lab = lab
        self.stage = stage
        self._lock = asyncio.Lock()
        self.running: str | None = None  # what is being done now, for the page

    async def run(self, spec: Mapping[str, Any], source: str = "page") -> Outcome:
        """Do ``spec``; a bad request raises LabError before anything is done, a failure of the
        lab is an unsuccessful Outcome (its story line says why)."""
        planned = plan(self.lab, spec)
        return await self.run_planned(planned, source)

    async def run_planned(self, planned: Planned, source: str = "page") -> Outcome:
        """Do ``planned`` in a worker thread, marked in the story (lessons use this for what is
        not a lab command, such as starting a controller)."""
        async with self._lock:
            self.running = planned.text
            ref = self.stage.action_started(planned.text, planned.cli, source)
            start = time.monotonic()
            try:
                result = await asyncio.wait_for(asyncio.to_thread(planned.call), ACTION_BOUND)
                ok = True
            except TimeoutError:
                result, ok = f"not done within {ACTION_BOUND:.0f} s", False
            except LabError as e:
                result, ok = str(e).splitlines()[0], False
            except Exception as e:  # a lab call that broke: one line in the story, never a crash
                result, ok = f"{type(e).__name__}: {e}".splitlines()[0], False
            finally:
                self.running = None
            self.stage.action_done(ref, ok, result)
            return Outcome(ok, result, planned.cli, time.monotonic() - start)
