"""Events the core reports so that logs and teaching views can say *why* things happen.

The core counts time in ticks; ``describe.event_line`` turns ``elapsed_ticks`` into seconds
when the caller knows how long a tick is ("no heartbeat for 1.1 s").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class RaftEvent:
    kind: str  # a stable machine-readable name: "election", "became-leader", "step-down", ...
    node: int  # the node it happened on
    term: int  # the node's term when it happened
    # Human text; "{elapsed}" (if present) is replaced by elapsed_ticks rendered as time.
    text: str
    elapsed_ticks: int | None = None
