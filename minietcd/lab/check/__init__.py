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

from .durability import DurabilityResult, FinalValue, check_durability
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
from .report import format_report, format_timeline, render_html_timeline, write_html_timeline
from .search import Budget, Verdict
from .watch import (
    Change,
    WatchEvent,
    WatchRecord,
    WatchResult,
    check_watches,
    committed_changes,
    load_watches,
    save_watches,
)

__all__ = [
    "ABSENT",
    "Budget",
    "Change",
    "DurabilityResult",
    "FinalValue",
    "KeyResult",
    "KeyState",
    "LinearizabilityResult",
    "OpKind",
    "Operation",
    "Outcome",
    "Recorder",
    "RevisionViolation",
    "Verdict",
    "WatchEvent",
    "WatchRecord",
    "WatchResult",
    "check_durability",
    "check_linearizability",
    "check_revision_order",
    "check_watches",
    "committed_changes",
    "dump_history",
    "format_report",
    "format_timeline",
    "key_state",
    "load_history",
    "load_history_from",
    "load_watches",
    "render_html_timeline",
    "save_history",
    "save_watches",
    "write_html_timeline",
]
