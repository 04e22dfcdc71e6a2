"""What a chaos run found: :class:`ChaosResult` (the checkers' verdicts), the final membership
check (:func:`check_membership`) and the report text (:func:`chaos_report`): operations,
faults, elections seen, verdicts, and on failure the seed that replays the schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minietcd.lab import probe
from minietcd.lab.chaos_nemesis import Fault
from minietcd.lab.chaos_options import UNSAFE_READS_ENV, ChaosOptions
from minietcd.lab.check import (
    DurabilityResult,
    LinearizabilityResult,
    Verdict,
    WatchResult,
    format_report,
)
from minietcd.lab.cluster import Replacement


@dataclass(slots=True)
class MembershipCheck:
    """Did the cluster end as it began: ``expected`` members in MemberList, every one started,
    every replacement finished? ``problems`` says what is wrong (empty: ok)."""

    expected: int
    listed: int
    started: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        state = "ok" if self.ok else f"FAILED: {len(self.problems)} problem(s)"
        counts = f"{self.listed} in MemberList, {self.started} started, expected {self.expected}"
        head = f"membership: {state} ({counts})"
        return [head, *(f"  {p}" for p in self.problems)]


def check_membership(
    size: int,
    listed: Sequence[probe.ListedMember],
    replacements: Sequence[Replacement] = (),
    expected_ids: dict[str, int] | None = None,
    not_running: Sequence[str] = (),
) -> MembershipCheck:
    """The final membership against what the run should have left: ``size`` voters in the final
    MemberList ``listed``, all started (a member publishes its name once it has started), the
    newest replacement of each member added back and started under its new id, no removed id
    left, each member under the id the lab has for it (``expected_ids``: name -> id) and every
    member process running (``not_running`` names those that were not)."""
    problems: list[str] = []
    ids = {m.id for m in listed}
    if not listed:
        problems.append("MemberList could not be read from any member")
    elif len(listed) != size:
        problems.append(f"{len(listed)} members in MemberList, expected {size}")
    unstarted = [f"{m.id:x}" for m in listed if not m.name]
    if unstarted:
        problems.append(f"never started (no name published): {', '.join(unstarted)}")
    learners = [m.name or f"{m.id:x}" for m in listed if m.is_learner]
    if learners:
        problems.append(f"still learners: {', '.join(learners)}")
    newest = {rep.name: rep for rep in replacements}
    for rep in newest.values():
        if not rep.new_id:
            problems.append(f"{rep.name} was removed ({rep.old_id:x}) and never added back")
        elif not rep.started:
            problems.append(f"{rep.name} was added back as {rep.new_id:x} but never started")
        elif listed and rep.new_id not in ids:
            problems.append(f"{rep.name}'s new id {rep.new_id:x} is not in MemberList")
    for rep in replacements:
        if rep.old_id in ids:
            problems.append(f"{rep.name}'s removed id {rep.old_id:x} is still in MemberList")
    if listed:
        for name, want in (expected_ids or {}).items():
            if want not in ids:
                problems.append(f"{name} ({want:x}) is missing from MemberList")
    if not_running:
        problems.append(f"not running at the end: {', '.join(not_running)}")
    started = sum(1 for m in listed if m.name)
    return MembershipCheck(size, len(listed), started, problems)


@dataclass(slots=True)
class ChaosResult:
    options: ChaosOptions
    ops: list[Any]
    faults: list[Fault]
    skipped: list[str]
    elections: int
    linearizability: LinearizabilityResult
    watch: WatchResult
    durability: DurabilityResult
    report: str
    lab_dir: Path = field(default_factory=Path)
    replacements: list[Replacement] = field(default_factory=list)
    final_members: list[probe.ListedMember] = field(default_factory=list)  # MemberList at the end
    expected_ids: dict[str, int] = field(default_factory=dict)  # name -> id in the lab state at the end
    not_running: list[str] = field(default_factory=list)  # members whose process was not running at the end

    @property
    def membership(self) -> MembershipCheck:
        return check_membership(
            self.options.size, self.final_members, self.replacements, self.expected_ids, self.not_running
        )

    @property
    def histories_ok(self) -> bool:
        """The linearizability, watch and durability checks passed."""
        return self.linearizability.verdict is not Verdict.ILLEGAL and self.watch.ok and self.durability.ok

    @property
    def ok(self) -> bool:
        return self.histories_ok and self.membership.ok


def chaos_report(r: ChaosResult, caught_up: dict[int, int | None] | None = None) -> str:
    o = r.options
    title = f"minietcd-lab chaos: {o.size} members, {o.duration:.0f}s, seed {o.seed}"
    body = format_report(r.linearizability, r.ops, watch=r.watch, durability=r.durability, title=title)
    head, _, rest = body.partition("\n\n")
    by_kind: dict[str, int] = {}
    for f in r.faults:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    lines = [head, ""]
    if o.unsafe_local_reads:
        lines.append(f"!!! members ran with {UNSAFE_READS_ENV}=1 (deliberately broken reads)")
    lines.append(
        f"faults injected: {len(r.faults)} ("
        + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
        + ")"
    )
    lines += [f"  {f.describe()}" for f in r.faults]
    lines += [f"  note: {s}" for s in r.skipped]
    if r.replacements:
        how = []
        for rep in r.replacements:
            snap = (caught_up or {}).get(id(rep))
            how.append(f"{rep.name} from a snapshot at index {snap}" if snap else f"{rep.name} from the log")
        lines.append(f"members replaced: {len(r.replacements)}, caught up: " + "; ".join(how))
    lines.append(f"elections seen: {r.elections} (terms with a 'became leader' in the member logs)")
    lines.append("")
    membership = r.membership
    if r.ok:
        verdict = "OK: no violation"
    else:
        failed = [] if r.histories_ok else ["VIOLATION"]
        if not membership.ok:
            failed.append(f"membership FAILED ({membership.problems[0]})")
        verdict = "; ".join(failed)
    replay = (
        f"minietcd-lab chaos --size {o.size} --duration {o.duration:g}s "
        f"--nemesis {','.join(o.nemeses)} --seed {o.seed}"
        + (" --unsafe-local-reads" if o.unsafe_local_reads else "")
    )
    tail = ["", *membership.lines(), "", f"verdict: {verdict}"]
    if not r.ok:
        tail.append(f"replay the fault schedule with: {replay}")
    return "\n".join(lines) + "\n" + rest + "\n".join(tail) + "\n"
