"""One size of the fault-tolerance table: one cluster, every variant run on it in turn, each
step taking one more member away and checking every side (:class:`Experiment`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.backend import LabCluster
from minietcd.lab.fault_table_results import SideResult, StepResult, TableOptions, VariantResult
from minietcd.lab.faults import Faults

BASE_KEY, BASE_VALUE = "ft/base", "base"


class Experiment:
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
