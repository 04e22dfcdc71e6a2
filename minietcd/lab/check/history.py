"""What a chaos run records: one :class:`Operation` per client request, as JSON lines.

An operation is recorded twice over its life: when the client *invokes* it and when it
*completes*. The checkers only ever look at those two instants and at the outcome, in the
vocabulary of Jepsen and Porcupine:

* ``OK``: the server answered; the outputs (value read, success flag, revision) are facts.
* ``FAIL``: the request was certainly **not** applied, e.g. refused before it was proposed
  (no leader, a bad request, a connection that never carried it). The checkers drop it.
* ``UNKNOWN``: the client gave up (timeout, connection reset after sending). The request may
  have taken effect at any instant after its invocation, even after the client gave up, or
  never. Its outputs are unknown; ``complete`` may hold the instant the client gave up, for
  display only: the linearizability checker treats its return time as +infinity.

Times are floats in one clock shared by all clients of a run (seconds of ``time.monotonic``
in one process is right; wall clocks of several hosts are not).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from minietcd.errors import LabError

T = TypeVar("T")


class OpKind(enum.StrEnum):
    GET = "get"  # range on one key: outputs read_value, read_mod_revision, revision
    PUT = "put"  # outputs revision (the new mod_revision of the key)
    DELETE = "delete"  # delete_range on one key: outputs succeeded (deleted > 0), revision
    # Txn(compare value or mod_revision of key) then put(key, value): outputs succeeded and,
    # on success, revision. Nothing is read on failure.
    CAS = "cas"
    # The same txn with a get(key) in its else branch, as etcd's robustness tests issue it: on
    # failure the read value and mod_revision are outputs too, so a failed CAS is also a read.
    TXN = "txn"


class Outcome(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


# Kinds whose success replaces the key's value with ``value``.
WRITE_KINDS = frozenset({OpKind.PUT, OpKind.CAS, OpKind.TXN})


@dataclass(slots=True, frozen=True)
class Operation:
    """One client request and what came of it.

    Values are strings (etcd's bytes, decoded by the recorder); ``None`` as a value read means
    the key was absent. A mod_revision of 0 is how etcd compares an absent key, so
    ``expect_mod_revision=0`` is "create if absent".
    """

    id: int  # unique within a history
    client: int  # the client (lane in the timeline) that issued it
    kind: OpKind
    key: str
    invoke: float  # when the client sent it
    complete: float | None  # when the answer came (OK/FAIL), or the give-up instant / None
    outcome: Outcome
    # --- inputs
    value: str | None = None  # put / cas / txn: the value written on success
    expect_value: str | None = None  # cas / txn: compare value(key) == expect_value ...
    expect_mod_revision: int | None = None  # ... or mod_revision(key) == this (exactly one)
    # --- outputs (meaningful only when outcome is OK)
    read_value: str | None = None  # get, and txn on failure: the value read (None = absent)
    read_mod_revision: int | None = None  # its mod_revision, if the recorder kept it
    succeeded: bool | None = None  # cas / txn: the compare held; delete: something was deleted
    revision: int | None = None  # the response header's revision (a write's own revision)
    error: str | None = None  # what the client saw on FAIL / UNKNOWN, for the report

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"operation {self.id}: {problem}")

    def _problem(self) -> str | None:
        if self.kind in WRITE_KINDS and self.value is None:
            return f"{self.kind} needs a value"
        if self.kind in (OpKind.CAS, OpKind.TXN):
            if (self.expect_value is None) == (self.expect_mod_revision is None):
                return "cas/txn compares exactly one of expect_value, expect_mod_revision"
            if self.outcome is Outcome.OK and self.succeeded is None:
                return "an acknowledged cas/txn must say whether it succeeded"
        if self.outcome is Outcome.OK and (self.complete is None or math.isinf(self.complete)):
            return "an acknowledged operation needs the time its answer came"
        if self.complete is not None and self.complete < self.invoke:
            return f"completes ({self.complete}) before it is invoked ({self.invoke})"
        return None

    @property
    def return_time(self) -> float:
        """The latest instant the operation can take effect: +inf unless acknowledged."""
        if self.outcome is Outcome.OK and self.complete is not None:
            return self.complete
        return math.inf

    @property
    def is_write(self) -> bool:
        return self.kind is not OpKind.GET

    def writes_value(self) -> bool:
        """Whether, having taken effect, it certainly left ``value`` in the key."""
        if self.kind is OpKind.PUT:
            return True
        return self.kind in (OpKind.CAS, OpKind.TXN) and self.succeeded is True

    def changed_key(self) -> bool:
        """Whether it was acknowledged and certainly changed its key, so made a revision."""
        if self.outcome is not Outcome.OK:
            return False
        if self.kind is OpKind.DELETE:
            return self.succeeded is True
        return self.writes_value()

    def describe(self) -> str:
        """A one-line rendering for reports: ``put k1=v3 -> ok rev=12``."""
        return f"{self.describe_input()} -> {self.describe_output()}"

    def describe_input(self) -> str:
        if self.kind is OpKind.GET:
            return f"get {self.key}"
        if self.kind is OpKind.DELETE:
            return f"delete {self.key}"
        if self.kind is OpKind.PUT:
            return f"put {self.key}={self.value}"
        if self.expect_mod_revision is not None:
            cond = f"mod_rev={self.expect_mod_revision}"
        else:
            cond = f"value={self.expect_value}"
        return f"{self.kind} {self.key} if {cond} then ={self.value}"

    def describe_output(self) -> str:
        if self.outcome is not Outcome.OK:
            return str(self.outcome) + (f" ({self.error})" if self.error else "")
        parts: list[str] = []
        read = self.kind is OpKind.GET or (self.kind is OpKind.TXN and self.succeeded is False)
        if self.kind in (OpKind.CAS, OpKind.TXN, OpKind.DELETE) and self.succeeded is not None:
            parts.append("succeeded" if self.succeeded else "not-succeeded")
        if read:
            shown = "<absent>" if self.read_value is None else self.read_value
            parts.append(f"read={shown}")
            if self.read_mod_revision is not None:
                parts.append(f"mod_rev={self.read_mod_revision}")
        if self.revision is not None:
            parts.append(f"rev={self.revision}")
        return " ".join(["ok", *parts])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; fields left at their default are omitted to keep lines short."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and v == f.default and f.name != "complete":
                continue
            if isinstance(v, enum.Enum):
                v = v.value
            elif isinstance(v, float) and not math.isfinite(v):
                v = None  # strict JSON has no infinity; None reads back as "never completed"
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Operation:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        args = dict(d)
        args["kind"] = OpKind(args["kind"])
        args["outcome"] = Outcome(args["outcome"])
        args.setdefault("complete", None)
        return cls(**args)


# --- JSON lines ------------------------------------------------------------------------------


def write_jsonl(fp: IO[str], records: Iterable[Mapping[str, Any]]) -> None:
    for rec in records:
        fp.write(json.dumps(rec, separators=(",", ":"), allow_nan=False))
        fp.write("\n")


def read_jsonl(fp: IO[str], *, name: str = "<stream>") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line raises LabError."""
    for lineno, line in enumerate(fp, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabError(f"{name}:{lineno}: not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise LabError(f"{name}:{lineno}: expected a JSON object")
        yield lineno, obj


def dump_history(ops: Iterable[Operation], fp: IO[str]) -> None:
    write_jsonl(fp, (op.to_dict() for op in ops))


def load_history_from(fp: IO[str], *, name: str = "<stream>") -> list[Operation]:
    return parse_jsonl(fp, Operation.from_dict, name=name)


def save_history(path: str | os.PathLike[str], ops: Iterable[Operation]) -> None:
    with open(path, "w", encoding="utf-8") as fp:
        dump_history(ops, fp)


def load_history(path: str | os.PathLike[str]) -> list[Operation]:
    with open(path, encoding="utf-8") as fp:
        return load_history_from(fp, name=os.fspath(path))


def parse_jsonl(
    fp: IO[str], make: Callable[[dict[str, Any]], T], *, name: str = "<stream>"
) -> list[T]:
    """``make`` applied to each line's object; a record it refuses raises LabError."""
    out: list[T] = []
    for lineno, obj in read_jsonl(fp, name=name):
        try:
            out.append(make(obj))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"{name}:{lineno}: bad record: {exc}") from exc
    return out


# --- recording -------------------------------------------------------------------------------


@dataclass(slots=True)
class Recorder:
    """Builds a history as clients run: ``invoke`` before sending, ``ok`` / ``fail`` /
    ``unknown`` when the answer (or the give-up) comes. Pure bookkeeping; the clock is
    injected so that the chaos runner's single monotonic clock stamps every client.
    """

    clock: Callable[[], float]
    ops: list[Operation] = field(default_factory=list)  # completed records, in completion order
    _pending: dict[int, Operation] = field(default_factory=dict)  # id -> invoked, not completed
    _next_id: int = 0

    def invoke(self, client: int, kind: OpKind, key: str, **inputs: Any) -> int:
        op_id = self._next_id
        self._next_id += 1
        self._pending[op_id] = Operation(
            id=op_id, client=client, kind=kind, key=key, invoke=self.clock(), complete=None,
            outcome=Outcome.UNKNOWN, **inputs,
        )
        return op_id

    def ok(self, op_id: int, **outputs: Any) -> Operation:
        return self._finish(op_id, Outcome.OK, outputs, self.clock())

    def fail(self, op_id: int, error: str | None = None) -> Operation:
        return self._finish(op_id, Outcome.FAIL, {"error": error}, self.clock())

    def unknown(self, op_id: int, error: str | None = None) -> Operation:
        return self._finish(op_id, Outcome.UNKNOWN, {"error": error}, self.clock())

    def close(self) -> list[Operation]:
        """End of run: anything still pending has an unknown outcome. Returns all records."""
        for op_id in list(self._pending):
            self._finish(op_id, Outcome.UNKNOWN, {"error": "pending at end of run"}, None)
        return self.ops

    def _finish(
        self, op_id: int, outcome: Outcome, outputs: dict[str, Any], complete: float | None
    ) -> Operation:
        op = self._pending.pop(op_id)
        done = dataclasses.replace(op, outcome=outcome, complete=complete, **outputs)
        self.ops.append(done)
        return done
