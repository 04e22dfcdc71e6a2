"""Terse constructors for hand-written histories: ``put(client, key, value, t0, t1)``."""

from __future__ import annotations

import itertools
from typing import Any

from minietcd.lab.check.history import Operation, OpKind, Outcome

_ids = itertools.count(1)

OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN


def op(
    client: int,
    kind: OpKind,
    key: str,
    t0: float,
    t1: float | None,
    outcome: Outcome = OK,
    **fields: Any,
) -> Operation:
    return Operation(
        id=next(_ids), client=client, kind=kind, key=key, invoke=t0, complete=t1,
        outcome=outcome, **fields,
    )


def put(
    c: int, key: str, value: str, t0: float, t1: float | None, outcome: Outcome = OK,
    rev: int | None = None,
) -> Operation:
    return op(c, OpKind.PUT, key, t0, t1, outcome, value=value, revision=rev)


def get(
    c: int, key: str, value: str | None, t0: float, t1: float, mod: int | None = None,
    rev: int | None = None, outcome: Outcome = OK,
) -> Operation:
    return op(c, OpKind.GET, key, t0, t1, outcome, read_value=value, read_mod_revision=mod,
              revision=rev)


def delete(
    c: int, key: str, t0: float, t1: float | None, deleted: bool | None = None,
    outcome: Outcome = OK, rev: int | None = None,
) -> Operation:
    return op(c, OpKind.DELETE, key, t0, t1, outcome, succeeded=deleted, revision=rev)


def cas(
    c: int, key: str, expect: str | int, value: str, t0: float, t1: float | None,
    ok: bool | None = None, outcome: Outcome = OK, rev: int | None = None,
    kind: OpKind = OpKind.CAS, read: str | None = None, read_mod: int | None = None,
) -> Operation:
    """A compare-and-put; ``expect`` is a value (str) or a mod_revision (int)."""
    compare: dict[str, Any] = (
        {"expect_mod_revision": expect} if isinstance(expect, int) else {"expect_value": expect}
    )
    return op(c, kind, key, t0, t1, outcome, value=value, succeeded=ok, revision=rev,
              read_value=read, read_mod_revision=read_mod, **compare)


def txn(
    c: int, key: str, expect: str | int, value: str, t0: float, t1: float | None,
    ok: bool | None = None, outcome: Outcome = OK, rev: int | None = None,
    read: str | None = None, read_mod: int | None = None,
) -> Operation:
    """A compare-and-put with a get in its else branch (``read`` is what it read)."""
    return cas(c, key, expect, value, t0, t1, ok, outcome, rev, OpKind.TXN, read, read_mod)
