"""What the fault-tolerance table measures and what it found: etcd's documented numbers, the
variants, the options of a run (:class:`TableOptions`) and its results, size by size, variant by
variant, step by step. The method is described in :mod:`minietcd.lab.fault_table`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from minietcd.errors import LabError
from minietcd.lab.cluster import MAX_SIZE
from minietcd.lab.ports import PortPlan

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
