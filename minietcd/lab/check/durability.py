"""Durability after healing: no acknowledged write is lost.

Once the nemesis has healed every fault and the cluster has settled, one final (linearizable)
read of every key must show, for each acknowledged write, either that write or a later one
that overwrote it. "Later" is decided by revision where both are known (etcd's revision is
the commit order), else by real time: an operation that might have taken effect after the
write (it had not returned when the write was invoked) might have overwritten it.

An acknowledged write is in a majority's WAL before the client hears of it (DESIGN rule 4),
so a loss here means a member lost its log, a wrong leader won, or an apply went missing.
The final read is also checked on its own: its value must have been written by some
operation that did not fail, and the store's revision must not be below a revision already
acknowledged.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .history import WRITE_KINDS, Operation, OpKind, Outcome


@dataclass(slots=True, frozen=True)
class FinalValue:
    """A key as the final read found it (an absent key is ``None`` in the final mapping)."""

    value: str
    mod_revision: int | None = None


class DurabilityKind(enum.StrEnum):
    LOST = "lost"  # an acknowledged write neither present nor overwritten
    PHANTOM = "phantom"  # the final value was never written by an op that did not fail
    REGRESSED = "regressed"  # the final store revision is below an acknowledged one


@dataclass(slots=True, frozen=True)
class DurabilityViolation:
    kind: DurabilityKind
    key: str
    op: Operation | None  # the acknowledged write concerned, if one
    detail: str

    def __str__(self) -> str:
        which = f" op #{self.op.id} ({self.op.describe()})" if self.op is not None else ""
        return f"{self.kind}: key {self.key}{which}: {self.detail}"


@dataclass(slots=True)
class DurabilityResult:
    violations: list[DurabilityViolation]
    checked: int  # acknowledged writes checked
    unread_keys: list[str]  # keys written but missing from the final read: not checked

    @property
    def ok(self) -> bool:
        return not self.violations


def check_durability(
    ops: Iterable[Operation],
    final: Mapping[str, FinalValue | None],
    *,
    final_revision: int | None = None,
) -> DurabilityResult:
    """Check every acknowledged write against ``final`` (key -> value, None when absent)."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.outcome is not Outcome.FAIL and op.is_write:
            by_key[op.key].append(op)
    violations: list[DurabilityViolation] = []
    checked = 0
    unread: list[str] = []
    for key, writes in sorted(by_key.items()):
        acked = [op for op in writes if op.changed_key()]
        if key not in final:
            if acked:
                unread.append(key)
            continue
        fv = final[key]
        if fv is not None and not any(
            op.kind in WRITE_KINDS and op.value == fv.value and not _certainly_no_effect(op)
            for op in writes
        ):
            violations.append(DurabilityViolation(
                DurabilityKind.PHANTOM, key, None,
                f"final value {fv.value!r} was written by no operation that may have taken effect",
            ))
        for op in acked:
            checked += 1
            problem = _lost(op, fv, writes)
            if problem is not None:
                violations.append(DurabilityViolation(DurabilityKind.LOST, key, op, problem))
            if final_revision is not None and (op.revision or 0) > final_revision:
                violations.append(DurabilityViolation(
                    DurabilityKind.REGRESSED, key, op,
                    f"acknowledged at revision {op.revision}, "
                    f"the final store revision is {final_revision}",
                ))
    return DurabilityResult(violations, checked, unread)


def _lost(w: Operation, fv: FinalValue | None, writes: list[Operation]) -> str | None:
    """Why the acknowledged change ``w`` is not accounted for by the final read, or None."""
    deleted = w.kind is OpKind.DELETE
    if fv is None and deleted:
        return None
    if fv is not None and w.revision is not None and fv.mod_revision is not None:
        # Both revisions known: the final read must be this very write, or a later one.
        if fv.mod_revision > w.revision:
            return None
        if fv.mod_revision == w.revision and not deleted and fv.value == w.value:
            return None
        return (
            f"final read shows {fv.value!r} at mod_revision {fv.mod_revision}, older than or "
            f"different from this write at revision {w.revision}"
        )
    if fv is not None and not deleted and fv.value == w.value:
        return None
    # Something else is there (or nothing): some other op must have overwritten w after it.
    want_delete = fv is None
    for x in writes:
        if x is w or _certainly_no_effect(x):
            continue
        if want_delete != (x.kind is OpKind.DELETE):
            continue
        if _may_follow(x, w):
            return None
    now = "absent" if fv is None else f"{fv.value!r}"
    return f"final read shows {now} and no operation could have overwritten this write"


def _certainly_no_effect(op: Operation) -> bool:
    return op.outcome is Outcome.OK and op.succeeded is False


def _may_follow(x: Operation, w: Operation) -> bool:
    """Whether ``x`` may have taken effect after the acknowledged ``w``."""
    if x.outcome is Outcome.OK and x.revision is not None and w.revision is not None:
        return x.revision > w.revision
    return x.return_time > w.invoke
