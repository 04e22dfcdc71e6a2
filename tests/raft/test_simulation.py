"""The seeded simulator: Raft's safety properties under crashes, partitions, a lossy network
and membership changes, then liveness once the faults stop. See tests/raft/sim/.

    pytest tests/raft/test_simulation.py                 # seeds 0..499
    pytest tests/raft/test_simulation.py --seed 1234     # replay one seed
    pytest tests/raft/test_simulation.py -m slow         # the long soak
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest

from minietcd.raft import log as raft_log
from minietcd.raft import raft, rawnode, roles
from minietcd.raft.rawnode import Ready
from minietcd.raft.types import NONE, Message
from tests.raft.conftest import DEFAULT_SEEDS
from tests.raft.sim.scenario import LONG_SEEDS, SimFailure, simulate

REPO = Path(__file__).resolve().parents[2]
# A seed whose run has it all (checked below): crashes mid-Ready, restarts, partitions, pauses,
# a lossy network, learners, removals, snapshots, reads.
RICH_SEED = 790  # 70 until reads became one round at a time and appends were coalesced (issue 15)
RICH_MARKERS = [
    "crash n", "with its Ready", "restart n", "partition (", "pause n", "lost: ", "duplicated",
    "applied ADD_LEARNER", "applied REMOVE", "restored snapshot", "read-index",
]


def run_seed(seed: int) -> None:
    try:
        simulate(seed)
    except SimFailure as f:
        pytest.fail(f.report(), pytrace=False)


def test_seed(sim_seed: int) -> None:
    """One seeded run: every safety check after every step, then liveness after healing."""
    run_seed(sim_seed)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(20))
def test_soak(block: int) -> None:
    """Many more seeds (500 per block), beyond the default ones."""
    first = DEFAULT_SEEDS + block * 500
    for seed in range(first, first + 500):
        run_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(4))
def test_soak_long_runs(block: int) -> None:
    """Long runs (5x the chaos: long logs, many compactions and membership changes)."""
    first = LONG_SEEDS + block * 100
    for seed in range(first, first + 100):
        run_seed(seed)


# -- determinism -------------------------------------------------------------------------------


def transcript_digest(seed: int) -> str:
    lines = simulate(seed, keep=None).transcript.lines()
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_same_seed_same_transcript() -> None:
    """Same seed, same run: every message, event and fault, line for line."""
    a = simulate(RICH_SEED, keep=None).transcript.lines()
    b = simulate(RICH_SEED, keep=None).transcript.lines()
    missing = [k for k in RICH_MARKERS if not any(k in line for line in a)]
    assert not missing, f"seed {RICH_SEED} no longer exercises {missing}: pick another RICH_SEED"
    assert a == b


def test_same_transcript_in_other_processes() -> None:
    """No hidden input (set order of bytes/str hashing, ids, clocks) leaks into a run."""
    code = (
        "from tests.raft.test_simulation import transcript_digest; "
        f"print(transcript_digest({RICH_SEED}))"
    )
    here = transcript_digest(RICH_SEED)
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


# -- the checker has teeth: known bugs, injected into the core, must be caught ---------------------


def _vote_for_anyone(self: raft.Raft, m: Message) -> None:
    """Forget who we voted for (and whom we follow) before answering: double votes."""
    saved = self.vote, self.lead
    self.vote, self.lead = NONE, NONE
    ORIGINAL_HANDLE_VOTE(self, m)
    if self.vote == NONE:
        self.vote, self.lead = saved


def _read_without_heartbeat_round(r: raft.Raft, m: Message) -> None:
    """Answer a ReadIndex from the commit index without confirming leadership (thesis 6.4)."""
    roles._respond_read_index(r, m, r.raft_log.committed)


def _ready_that_forgets_hard_state(self: rawnode.RawNode) -> Ready:
    """Messages go out but the term/vote they depend on is never handed over to persist."""
    rd = ORIGINAL_READY(self)
    if rd.hard_state is not None and rd.messages:
        self._prev_hard = rd.hard_state
        rd.hard_state = None
    return rd


ORIGINAL_HANDLE_VOTE = raft.Raft._handle_vote_request
ORIGINAL_READY = rawnode.RawNode.ready

MUTANTS: dict[str, tuple[object, str, Callable[..., object]]] = {
    # Paper 5.4.1: a voter must refuse a candidate whose log is behind its own.
    "vote-ignores-log": (raft_log.RaftLog, "is_up_to_date", lambda self, i, t: True),
    "double-vote": (raft.Raft, "_handle_vote_request", _vote_for_anyone),
    "read-index-without-quorum": (roles, "_leader_read_index", _read_without_heartbeat_round),
    "hard-state-not-persisted": (rawnode.RawNode, "ready", _ready_that_forgets_hard_state),
    # Paper Figure 2, AppendEntries rule 2: reject if the previous entry does not match.
    "no-append-consistency-check": (raft_log.RaftLog, "match_term", lambda self, i, t: True),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_simulator_catches_injected_bug(mutant: str) -> None:
    """Each mutant breaks one rule of Raft; some early seed must expose it."""
    owner, attr, replacement = MUTANTS[mutant]
    with mock.patch.object(owner, attr, replacement):
        for seed in range(150):
            try:
                simulate(seed)
            except SimFailure:
                return
    pytest.fail(f"no seed in 0..149 caught the {mutant} bug")
