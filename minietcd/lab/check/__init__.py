"""Checking what a chaos run recorded (``minietcd-lab chaos``).

* :mod:`.history`: the operation record and its JSON-lines form.
* :mod:`.linearizability`: is the KV history linearizable (Wing & Gong / Lowe search with
  Porcupine's memoisation and per-key partitioning); a shrunk witness when it is not.
* :mod:`.watch`: watch guarantees (ordered, unique, no gaps, consistent with the KV history).
* :mod:`.durability`: after healing, every acknowledged write is there or overwritten.
* :mod:`.report`: a text report and a standalone HTML timeline.

Pure Python, no I/O except loading/saving histories and writing reports.
"""

from __future__ import annotations

from .history import (
    Operation,
    OpKind,
    Outcome,
    Recorder,
    dump_history,
    load_history,
    load_history_from,
    save_history,
)
from .linearizability import (
    KeyResult,
    LinearizabilityResult,
    RevisionViolation,
    check_linearizability,
    check_revision_order,
)
from .model import ABSENT, KeyState, key_state
from .search import Budget, Verdict

__all__ = [
    "ABSENT",
    "Budget",
    "KeyResult",
    "KeyState",
    "LinearizabilityResult",
    "OpKind",
    "Operation",
    "Outcome",
    "Recorder",
    "RevisionViolation",
    "Verdict",
    "check_linearizability",
    "check_revision_order",
    "dump_history",
    "key_state",
    "load_history",
    "load_history_from",
    "save_history",
]
