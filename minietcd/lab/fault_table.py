"""etcd's fault-tolerance table, measured on real clusters (``minietcd-lab fault-table``).

etcd's FAQ ("What is failure tolerance?") documents, for a cluster of N members, a majority of
N // 2 + 1 and a failure tolerance of (N - 1) // 2. For each size this starts one cluster (every
peer link through Toxiproxy) and, for each *variant* below, takes k = 0, 1, ..., N members away
one more at a time and checks each side of the cluster:

* ``kill``: SIGKILL the current leader (else the first member left); survivors are one side.
* ``partition``: partition the k members off; followers are taken first, so the leader stays
  with the rest while it can.
* ``partition-leader``: the same, but the current leader of the rest is taken first.
  In both partition variants k = N cuts every member off from every other.

A side with a majority (``>= N // 2 + 1`` members) must accept a linearizable put and serve it
back with a linearizable get (from another member where it has one) within the deadline. A side
without a majority must refuse both and still answer a serializable get. An even split (1|1,
2|2, 3|3, 4|4) must elect no leader on either side, checked over several election timeouts. The
*observed* tolerance of a variant is the largest k for which the remaining members (the side
that was not taken away) still wrote and read. After k = N the variant heals (restarts the
killed, heals the links) and every member must converge: equal HashKV at one revision.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.backend import LabCluster, load_cluster
from minietcd.lab.cluster import MAX_SIZE, Cluster, ClusterSpec
from minietcd.lab.faults import Faults
from minietcd.lab.labdir import exclusive
from minietcd.lab.ports import PortPlan
from minietcd.lab.state import LabState
from minietcd.lab.toxiproxy import start_toxiproxy

# etcd's documented table (FAQ, "What is failure tolerance?"): size -> (majority, tolerance).
DOCUMENTED: dict[int, tuple[int, int]] = {
    1: (1, 0),
    2: (2, 0),
    3: (2, 1),
    4: (3, 1),
    5: (3, 2),
    6: (4, 2),
    7: (4, 3),
    8: (5, 3),
    9: (5, 4),
}
VARIANTS = ("kill", "partition", "partition-leader")
BACKENDS = ("local", "compose")
MATPLOTLIB_PIN = "matplotlib==3.11.2"
BASE_KEY, BASE_VALUE = "ft/base", "base"


def parse_sizes(text: str) -> list[int]:
    """``"1-9"``, ``"3"``, ``"1,3,5-7"`` -> sorted sizes, each 1..9."""
    sizes: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise LabError(f"bad sizes {text!r}: use e.g. 1-9, 3 or 1,3,5")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if not 1 <= lo <= hi <= MAX_SIZE:
            raise LabError(f"sizes must be within 1-{MAX_SIZE}: {part!r}")
        sizes.update(range(lo, hi + 1))
    return sorted(sizes)


def parse_variants(text: str) -> list[str]:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    for v in chosen:
        if v not in VARIANTS:
            raise LabError(f"unknown variant {v!r}: choose from {', '.join(VARIANTS)}")
    if not chosen:
        raise LabError("choose at least one variant")
    return list(dict.fromkeys(chosen))


@dataclass(slots=True)
class TableOptions:
    sizes: list[int]
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    heartbeat_ms: int = 50
    election_ms: int = 500
    ok_deadline: float = 30.0  # a majority side must write and read within this
    refuse_timeout: float = 1.5  # a minority side's linearizable put / get must fail within this
    quiet_periods: int = 4  # election timeouts an even split is watched for a leader
    startup_timeout: float = 120.0
    backend: str = "local"  # "compose": each size is a docker compose project (minietcd.lab.compose)
    ports: PortPlan | None = None  # local: the shared Toxiproxy's API port, then the clusters' ports


@dataclass(slots=True)
class SideResult:
    members: list[str]
    majority: bool
    ok: bool
    outcome: str


@dataclass(slots=True)
class StepResult:
    variant: str
    k: int
    away: list[str]
    expected: bool  # N - k >= majority
    observed: bool  # the remaining members wrote and read
    sides: list[SideResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.expected == self.observed and all(s.ok for s in self.sides)


@dataclass(slots=True)
class VariantResult:
    variant: str
    steps: list[StepResult] = field(default_factory=list)
    converged: bool = False
    convergence: str = ""

    @property
    def observed_tolerance(self) -> int:
        """The largest k up to which every step's remaining members wrote and read (-1: none)."""
        k = -1
        for step in self.steps:
            if not step.observed:
                break
            k = step.k
        return k

    @property
    def ok(self) -> bool:
        return self.converged and all(s.ok for s in self.steps)


@dataclass(slots=True)
class SizeResult:
    size: int
    variants: list[VariantResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def majority(self) -> int:
        return DOCUMENTED[self.size][0]

    @property
    def documented_tolerance(self) -> int:
        return DOCUMENTED[self.size][1]

    def observed(self, variant: str) -> int | None:
        v = next((v for v in self.variants if v.variant == variant), None)
        return None if v is None else v.observed_tolerance

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and bool(self.variants)
            and all(v.ok and v.observed_tolerance == self.documented_tolerance for v in self.variants)
            and self.size // 2 + 1 == self.majority
        )


@dataclass(slots=True)
class TableResult:
    options: TableOptions
    sizes: list[SizeResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.sizes) and all(s.ok for s in self.sizes)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "options": asdict(self.options),
            "sizes": [
                {
                    "size": s.size,
                    "majority": s.majority,
                    "failures_tolerated_documented": s.documented_tolerance,
                    "failures_tolerated_observed": {v.variant: v.observed_tolerance for v in s.variants},
                    "ok": s.ok,
                    "seconds": round(s.seconds, 1),
                    "error": s.error,
                    "variants": [
                        {
                            "variant": v.variant,
                            "converged": v.converged,
                            "convergence": v.convergence,
                            "steps": [{**asdict(st), "ok": st.ok} for st in v.steps],
                        }
                        for v in s.variants
                    ],
                }
                for s in self.sizes
            ],
        }


class _Experiment:
    """One size: one cluster, every variant run on it in turn."""

    def __init__(self, cluster: LabCluster, options: TableOptions, tick: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.faults = Faults(cluster)
        self.options = options
        self.size = len(cluster.members)
        self.majority = self.size // 2 + 1
        self.tick = tick

    # --- primitives ----------------------------------------------------------------------

    def port(self, name: str) -> int:
        return self.cluster.member(name).client_port

    def leader_of(self, side: Sequence[str]) -> str | None:
        """The member of ``side`` that says it leads (None if none does or answers)."""
        for name in side:
            try:
                if probe.status(self.port(name), timeout=1.0).is_leader:
                    return name
            except probe.ProbeError:
                continue
        return None

    def write_and_read(self, side: Sequence[str], key: str, value: str) -> tuple[bool, str]:
        """Linearizable put through one member, linearizable get through another, retried until
        the deadline."""
        start = time.monotonic()
        deadline = start + self.options.ok_deadline
        attempt = 0
        last = ""
        written = False
        while time.monotonic() < deadline:
            writer = side[attempt % len(side)]
            reader = side[(attempt + 1) % len(side)]
            attempt += 1
            try:
                if not written:
                    probe.put(self.port(writer), key, value, timeout=2.0)
                    written = True
                got = probe.get(self.port(reader), key, timeout=2.0)
            except probe.ProbeError as e:
                last = str(e)
                time.sleep(0.05)
                continue
            if got == value:
                return True, f"wrote and read in {time.monotonic() - start:.1f}s"
            last = f"{reader} read {got!r}, not {value!r}"
            time.sleep(0.05)
        return False, f"no linearizable put+get within {self.options.ok_deadline:.0f}s (last: {last})"

    def refuses(self, side: Sequence[str], key: str) -> tuple[bool, str]:
        """A minority side: linearizable put and get fail, a serializable get answers."""
        name = side[0]
        port, t = self.port(name), self.options.refuse_timeout
        problems: list[str] = []

        def attempt(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except probe.ProbeError:
                return
            problems.append(f"{name} {what}")

        with ThreadPoolExecutor(max_workers=2) as pool:  # both wait out the same timeout
            put = pool.submit(
                attempt, "accepted a linearizable put", lambda: probe.put(port, key, "minority", timeout=t)
            )
            get = pool.submit(
                attempt, "served a linearizable get", lambda: probe.get(port, BASE_KEY, timeout=t)
            )
            put.result()
            get.result()
        deadline = time.monotonic() + self.options.ok_deadline
        while True:
            try:
                got = probe.get(port, BASE_KEY, timeout=2.0, serializable=True)
            except probe.ProbeError as e:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                problems.append(f"{name} did not answer a serializable get: {e}")
                break
            if got != BASE_VALUE:
                problems.append(f"{name} answered a serializable get with {got!r}, not {BASE_VALUE!r}")
            break
        if problems:
            return False, "; ".join(problems)
        return True, "refused linearizable put and get; served a serializable get"

    def no_leader(self, sides: Sequence[Sequence[str]]) -> tuple[bool, str]:
        """Every member of an even split loses its leader and none is elected for a while."""
        members = [n for side in sides for n in side]
        deadline = time.monotonic() + self.options.ok_deadline
        while True:
            leaders = self._leaders(members)
            if not leaders:
                break
            if time.monotonic() >= deadline:
                return False, f"still led after {self.options.ok_deadline:.0f}s: {leaders}"
            time.sleep(0.05)
        watch = self.options.quiet_periods * self.options.election_ms / 1000
        until = time.monotonic() + watch
        while time.monotonic() < until:
            leaders = self._leaders(members)
            if leaders:
                return False, f"a leader was elected in an even split: {leaders}"
            time.sleep(0.05)
        return True, f"no leader on either side for {watch:.1f}s"

    def _leaders(self, members: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for n in members:
            try:
                st = probe.status(self.port(n), timeout=1.0)
            except probe.ProbeError:
                continue
            if st.leader:
                leader = self.cluster.state.member_by_id(st.leader)
                out[n] = leader.name if leader else f"{st.leader:x}"
        return out

    # --- one step ------------------------------------------------------------------------

    def check_sides(self, variant: str, k: int, sides: list[list[str]]) -> list[SideResult]:
        key = f"ft/{variant}/k{k}"
        even = len(sides) == 2 and len(sides[0]) == len(sides[1]) and variant != "kill"

        def check(i: int) -> SideResult:
            side = sides[i]
            if len(side) >= self.majority:
                ok, text = self.write_and_read(side, f"{key}/side{i}", f"{variant}-{k}")
                return SideResult(side, True, ok, text)
            ok, text = self.refuses(side, f"{key}/side{i}")
            return SideResult(side, False, ok, text)

        with ThreadPoolExecutor(max_workers=max(1, len(sides))) as pool:
            results = list(pool.map(check, range(len(sides))))
        if even:
            ok, text = self.no_leader(sides)
            for r in results:
                r.ok = r.ok and ok
                r.outcome += f"; {text}"
        return results

    def pick(self, candidates: list[str], leader_first: bool) -> str:
        leader = self.leader_of(candidates)
        if leader_first and leader is not None:
            return leader
        others = [n for n in candidates if n != leader]
        return others[0] if others else candidates[0]

    def run_variant(self, variant: str) -> VariantResult:
        result = VariantResult(variant)
        names = self.cluster.names
        away: list[str] = []
        for k in range(self.size + 1):
            self.tick(f"N={self.size} {variant} k={k}")
            start = time.monotonic()
            if k > 0:
                rest = [n for n in names if n not in away]
                victim = self.pick(rest, leader_first=variant != "partition")
                away.append(victim)
                if variant == "kill":
                    self.faults.kill([victim])
                elif self.size == 1:
                    pass  # no peer to cut it off from: the only member is simply not asked
                elif k < self.size:
                    self.faults.partition([away])
                else:  # every member cut off from every other
                    self.faults.partition([[n] for n in names])
            rest = [n for n in names if n not in away]
            if variant == "kill":
                sides = [rest] if rest else []
            elif k < self.size:
                sides = [s for s in (rest, list(away)) if s]
            elif self.size == 1:
                sides = []
            else:
                sides = [[n] for n in names]
            side_results = self.check_sides(variant, k, sides)
            if variant == "partition" or variant == "partition-leader":
                remaining = side_results[0] if k < self.size else None
            else:
                remaining = side_results[0] if rest else None
            observed = remaining is not None and remaining.majority and remaining.ok
            if remaining is not None and not remaining.majority:
                observed = False
            result.steps.append(
                StepResult(
                    variant=variant,
                    k=k,
                    away=list(away),
                    expected=self.size - k >= self.majority,
                    observed=bool(observed),
                    sides=side_results,
                    seconds=round(time.monotonic() - start, 2),
                )
            )
        self.tick(f"N={self.size} {variant}: heal and converge")
        result.converged, result.convergence = self.heal_and_converge(variant)
        return result

    # --- healing -------------------------------------------------------------------------

    def heal_and_converge(self, variant: str) -> tuple[bool, str]:
        try:
            if variant == "kill":
                for n in self.cluster.names:
                    if self.cluster.process_state(n) == "killed":
                        self.cluster.start(n)
            else:
                self.faults.heal()
            leader = self.cluster.wait_healthy(self.options.startup_timeout)
        except LabError as e:
            return False, f"did not recover: {str(e).splitlines()[0]}"
        return self.converge(leader, f"ft/{variant}/final")

    def converge(self, leader: str, key: str) -> tuple[bool, str]:
        """Write through the leader, then wait until every member has the same HashKV at that
        revision."""
        deadline = time.monotonic() + self.options.ok_deadline
        revision = 0
        while revision == 0:
            try:
                revision = probe.put(self.port(leader), key, "done", timeout=2.0)
            except probe.ProbeError as e:
                if time.monotonic() >= deadline:
                    return False, f"final put failed: {e}"
                time.sleep(0.05)
        hashes: dict[str, int] = {}
        last: dict[str, str] = {}
        while True:
            for n in self.cluster.names:
                if n in hashes:
                    continue
                try:
                    hashes[n] = probe.hash_kv(self.port(n), revision)[0]
                except probe.ProbeError as e:
                    last[n] = str(e)
            if len(hashes) == self.size:
                break
            if time.monotonic() >= deadline:
                missing = {n: last.get(n, "?") for n in self.cluster.names if n not in hashes}
                return False, f"no HashKV at revision {revision} from {missing}"
            time.sleep(0.05)
        if len(set(hashes.values())) != 1:
            return False, f"HashKV differs at revision {revision}: {hashes}"
        return True, f"equal HashKV at revision {revision} on all {self.size}"

    def prepare(self) -> None:
        """The base key every member serves to serializable reads, applied everywhere."""
        leader = self.cluster.wait_healthy(self.options.startup_timeout)
        ok, text = self.write_and_read([leader], BASE_KEY, BASE_VALUE)
        if not ok:
            raise LabError(f"could not write {BASE_KEY}: {text}")
        ok, text = self.converge(leader, "ft/prepared")
        if not ok:
            raise LabError(f"members did not converge before the faults: {text}")


Launcher = Callable[[Path, ClusterSpec, float], LabCluster]


def _up_local(lab_dir: Path, spec: ClusterSpec, timeout: float, toxiproxy_url: str) -> LabCluster:
    try:
        return Cluster.up(lab_dir, spec, toxiproxy_url=toxiproxy_url, timeout=timeout)
    except LabError as e:
        if "already in use" not in str(e) or (spec.ports is not None and spec.ports.span is None):
            raise  # (the ports of a --port-base without --port-range would be the same again)
    # A port taken by someone else between choosing and binding: once more, on new ports.
    return Cluster.up(lab_dir, spec, toxiproxy_url=toxiproxy_url, timeout=timeout)


@contextlib.contextmanager
def launcher(backend: str, ports: PortPlan | None = None) -> Iterator[Launcher]:
    """How each size's cluster is started: local processes sharing one Toxiproxy (stopped on
    exit; with ``ports``, on its first port, the clusters on the rest), or a compose project of
    its own per size (Docker is checked here, before any)."""
    if backend == "compose":
        from minietcd.lab.compose import ComposeCluster, check_docker

        check_docker()
        yield lambda lab_dir, spec, timeout: ComposeCluster.up(lab_dir, spec, timeout=timeout)
        return
    if backend != "local":
        raise LabError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    with start_toxiproxy(port=None if ports is None else ports.base) as toxiproxy:
        rest = None if ports is None else ports.after(1)

        def up(lab_dir: Path, spec: ClusterSpec, timeout: float) -> LabCluster:
            spec.ports = rest
            return _up_local(lab_dir, spec, timeout, toxiproxy.url)

        yield up


def _leftover(lab_dir: Path) -> None:
    """Stop what a run that was killed left in ``lab_dir``."""
    from minietcd.lab.compose import is_compose_lab

    if LabState.exists(lab_dir) or is_compose_lab(lab_dir):
        with contextlib.suppress(LabError):
            load_cluster(lab_dir).down()


def run(
    options: TableOptions,
    work_dir: Path,
    console: Console | None = None,
    progress: bool = True,
) -> TableResult:
    """Measure every size in ``options`` (one cluster at a time, in ``work_dir``/sizeN), on the
    backend ``options.backend``."""
    console = console or Console(stderr=True)
    result = TableResult(options)
    started = time.monotonic()
    steps_total = sum(len(options.variants) * (n + 2) for n in options.sizes)
    with (
        exclusive(work_dir, "fault-table"),
        launcher(options.backend, options.ports) as start_cluster,
        Progress(
            TextColumn("[bold]{task.description:<38}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        ) as bar,
    ):
        task = bar.add_task("starting", total=steps_total)

        def tick(text: str) -> None:
            bar.update(task, description=text, advance=1)

        for n in options.sizes:
            size_result = SizeResult(n)
            t0 = time.monotonic()
            bar.update(task, description=f"N={n}: starting the cluster")
            spec = ClusterSpec(size=n, heartbeat_ms=options.heartbeat_ms, election_ms=options.election_ms)
            cluster: LabCluster | None = None
            lab_dir = work_dir / f"size{n}"
            _leftover(lab_dir)
            try:
                cluster = start_cluster(lab_dir, spec, options.startup_timeout)
                experiment = _Experiment(cluster, options, tick)
                experiment.prepare()
                for variant in options.variants:
                    size_result.variants.append(experiment.run_variant(variant))
            except LabError as e:
                size_result.error = str(e)
            finally:
                if cluster is not None:
                    try:
                        cluster.down()
                    except LabError as e:
                        size_result.error = size_result.error or str(e)
            size_result.seconds = time.monotonic() - t0
            result.sizes.append(size_result)
            done = sum(len(options.variants) * (m + 2) for m in options.sizes if m <= n)
            bar.update(task, completed=done)
    result.seconds = time.monotonic() - started
    return result


# --- output --------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[red]✗[/]"


def table_rows(result: TableResult) -> list[list[str]]:
    """Plain-text rows (for the PNG): size, majority, documented, observed per variant, verdict."""
    rows = []
    for s in result.sizes:
        observed = [str(s.observed(v)) if s.observed(v) is not None else "-" for v in result.options.variants]
        rows.append(
            [
                str(s.size),
                str(s.majority),
                str(s.documented_tolerance),
                *observed,
                "ok" if s.ok else "MISMATCH",
            ]
        )
    return rows


def header(result: TableResult) -> list[str]:
    observed = (f"observed\n{v}" for v in result.options.variants)
    return ["Size", "Majority", "Failures tolerated\n(etcd docs)", *observed, "result"]


def print_table(result: TableResult, console: Console) -> None:
    table = Table(title="Fault tolerance: etcd's documented table beside the measured one")
    for col in ("Size", "Majority", "Failures tolerated\n(etcd docs)"):
        table.add_column(col, justify="right")
    for v in result.options.variants:
        table.add_column(f"observed\n{v}", justify="right")
    for col in ("minority refuses,\nserializable ok", "even split:\nno leader", "converged", "time"):
        table.add_column(col, justify="center")
    for s in result.sizes:
        steps = [st for v in s.variants for st in v.steps]
        minority = [side for st in steps for side in st.sides if not side.majority]
        evens = [
            side
            for st in steps
            for side in st.sides
            if "either side" in side.outcome or "even split" in side.outcome
        ]
        observed = []
        for v in result.options.variants:
            o = s.observed(v)
            text = "-" if o is None else str(o)
            observed.append(text if o == s.documented_tolerance else f"[red]{text}[/]")
        table.add_row(
            str(s.size),
            str(s.majority),
            str(s.documented_tolerance),
            *observed,
            _mark(all(x.ok for x in minority)) if minority else "-",
            _mark(all(x.ok for x in evens)) if evens else "-",
            _mark(all(v.converged for v in s.variants)) if s.variants else "[red]✗[/]",
            f"{s.seconds:.0f}s",
        )
    console.print(table)
    for s in result.sizes:
        if s.error:
            console.print(f"[red]N={s.size}: {s.error}[/]")
        for vr in s.variants:
            if not vr.converged:
                console.print(f"[red]N={s.size} {vr.variant}: not converged: {vr.convergence}[/]")
            for st in vr.steps:
                if not st.ok:
                    sides = "; ".join(f"{','.join(x.members)}: {x.outcome}" for x in st.sides)
                    console.print(
                        f"[red]N={s.size} {vr.variant} k={st.k} (away {','.join(st.away) or '-'}): "
                        f"expected {'success' if st.expected else 'refusal'}, sides: {sides}[/]"
                    )
    verdict = "[green]all as documented[/]" if result.ok else "[red]MISMATCH[/]"
    where = " in containers (docker compose)" if result.options.backend == "compose" else ""
    console.print(
        f"{verdict} ({result.seconds:.0f}s for sizes {','.join(str(s.size) for s in result.sizes)}{where})"
    )


def require_png_support() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LabError(
            f"--png needs matplotlib, which is not installed (pip install '{MATPLOTLIB_PIN}')"
        ) from None


def write_png(result: TableResult, path: Path) -> None:
    """The table as an image (matplotlib, Agg backend)."""
    require_png_support()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = header(result)
    rows = table_rows(result)
    fig, ax = plt.subplots(figsize=(2 + 1.7 * len(cols), 1.2 + 0.4 * max(1, len(rows))))
    ax.axis("off")
    cells = ax.table(cellText=rows or [["-"] * len(cols)], colLabels=cols, loc="center", cellLoc="center")
    cells.auto_set_font_size(False)
    cells.set_fontsize(9)
    cells.scale(1, 1.6)
    for c in range(len(cols)):
        cells[0, c].set_height(cells[0, c].get_height() * 1.8)
    for (r, c), cell in cells.get_celld().items():
        if r == 0:
            cell.set_text_props(weight="bold")
        elif c == len(cols) - 1:
            cell.set_facecolor("#c8f0c8" if cell.get_text().get_text() == "ok" else "#f5b7b1")
    verdict = "all as documented" if result.ok else "MISMATCH"
    ax.set_title(f"minietcd fault tolerance, measured ({verdict}, {result.seconds:.0f}s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
