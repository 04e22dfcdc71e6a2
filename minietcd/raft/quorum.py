"""Majority arithmetic: who has to agree for a commit or an election (paper 5.2, 5.3).

A configuration of N voters needs ``N // 2 + 1`` of them. That is why a 2-member cluster
tolerates no failure and a 4-member cluster tolerates only one, exactly like a 3-member one.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

# An empty configuration commits "everything": it never limits a joint decision. etcd-io/raft
# uses math.MaxUint64 for the same purpose.
INFINITE_INDEX = 1 << 63


def majority(n: int) -> int:
    """Votes needed out of ``n`` voters."""
    return n // 2 + 1


def failures_tolerated(n: int) -> int:
    """Voters that may fail while a majority is left: ``(n - 1) // 2``."""
    return n - majority(n) if n else 0


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index replicated on a majority of ``voters`` (paper 5.3).

    Sort the voters' match indexes in descending order: the ``majority``-th one is on at least a
    majority of logs. (The caller still checks that its term is current: paper 5.4.2.)
    """
    if not voters:
        return INFINITE_INDEX
    srt = sorted((match.get(v, 0) for v in voters), reverse=True)
    return srt[majority(len(srt)) - 1]


class VoteResult(enum.Enum):
    PENDING = "pending"  # neither won nor lost yet: keep waiting for votes
    WON = "won"  # a majority granted
    LOST = "lost"  # a majority can no longer be reached


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Tally ``votes`` (id -> granted) among ``voters``; votes from non-voters do not count."""
    if not voters:
        return VoteResult.WON  # mirrors committed_index: an empty config agrees to everything
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    q = majority(len(voters))
    if granted >= q:
        return VoteResult.WON
    if granted + (len(voters) - granted - rejected) >= q:
        return VoteResult.PENDING
    return VoteResult.LOST
