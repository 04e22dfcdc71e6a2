"""What a chaos run is asked to do: :class:`ChaosOptions`, the nemeses to choose from, and the
environment variable that deliberately breaks members' reads (a test of the checkers).
The run itself is :mod:`minietcd.lab.chaos`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from minietcd.errors import LabError
from minietcd.lab.cluster import Cluster
from minietcd.lab.compose import ComposeCluster
from minietcd.lab.ports import PortPlan

# The same run, checkers and report on local processes or compose containers (--compose).
ChaosCluster = Cluster | ComposeCluster

NEMESES = ("partition", "kill", "pause", "slow", "leader-transfer", "member-replace")
UNSAFE_READS_ENV = "MINIETCD_UNSAFE_LOCAL_READS"


def parse_nemeses(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in NEMESES and n != "none"]
    if bad:
        raise LabError(f"unknown nemesis {', '.join(bad)}: choose among {', '.join(NEMESES)}, none")
    return [n for n in names if n != "none"]


@dataclass(slots=True)
class ChaosOptions:
    lab_dir: Path
    size: int = 5
    duration: float = 60.0  # seconds of workload under faults
    nemeses: Sequence[str] = ("partition", "kill", "pause")
    seed: int = 0
    clients_per_member: int = 2
    keys: int = 3
    op_timeout: float = 1.0  # per request
    fault_hold: tuple[float, float] = (1.5, 4.0)  # seconds a fault stays in force
    fault_gap: tuple[float, float] = (0.5, 1.5)  # seconds between faults
    # Partition nemesis: the fraction of partitions that cut a *minority* (vs. random halves).
    minority_bias: float = 0.5
    read_ratio: float = 0.5  # fraction of client ops that are reads (rest: puts and txns)
    unsafe_local_reads: bool = False  # start members with MINIETCD_UNSAFE_LOCAL_READS=1
    heartbeat_ms: int = 50
    election_ms: int = 500
    html: Path | None = None
    history_json: Path | None = None
    record: Path | None = None  # the run for `minietcd-lab web --replay` (lab/web/chaos_view.py)
    check_timeout: float = 60.0
    # Members snapshot (and release their log 5,000 entries behind) this often, so that a member
    # replaced late in a run has to catch up from a snapshot rather than from the whole log.
    snapshot_count: int = 1000
    replace_timeout: float = 20.0  # seconds a refused MemberRemove / MemberAdd is retried
    ports: PortPlan | None = None  # the cluster's ports (minietcd.lab.ports); None: random free ones
    backend: str = "local"  # or "compose": members are containers (minietcd.lab.compose)
    log: Callable[[str], None] = print
