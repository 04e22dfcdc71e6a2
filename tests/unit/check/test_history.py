"""Operation records: validation, descriptions, JSON lines, the recorder."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from minietcd.errors import LabError
from minietcd.lab.check.history import (
    Operation,
    OpKind,
    Outcome,
    Recorder,
    dump_history,
    load_history,
    load_history_from,
    save_history,
)

from .builders import UNKNOWN, cas, get, put, txn


def test_round_trip_through_json_lines(tmp_path: Path) -> None:
    ops = [
        put(1, "a", "x", 0.5, 1.25, rev=3),
        get(2, "a", None, 1, 2, rev=3),
        cas(3, "a", 0, "y", 2, None, outcome=UNKNOWN),
        txn(4, "a", "x", "z", 3, 4, ok=False, rev=5, read="y", read_mod=4),
    ]
    path = tmp_path / "history.jsonl"
    save_history(path, ops)
    assert load_history(path) == ops
    assert len(path.read_text().splitlines()) == 4


def test_defaults_are_left_out_of_each_line() -> None:
    buf = io.StringIO()
    dump_history([put(1, "a", "x", 0, 1)], buf)
    line = buf.getvalue()
    assert '"read_value"' not in line and '"complete":1' in line


_GET = '{"id":1,"client":1,"kind":"get","key":"a","invoke":0,"complete":1,"outcome":"ok"}'


def test_bad_lines_name_the_file_and_line() -> None:
    with pytest.raises(LabError, match=r"h.jsonl:2: not JSON"):
        load_history_from(io.StringIO(_GET + "\n{oops\n"), name="h.jsonl")
    with pytest.raises(LabError, match=r":1: bad record"):
        load_history_from(io.StringIO('{"id":1,"kind":"put"}\n'))
    with pytest.raises(LabError, match=r"unknown fields"):
        load_history_from(io.StringIO(_GET[:-1] + ',"x":1}\n'))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": OpKind.PUT}, "needs a value"),
        ({"kind": OpKind.CAS, "value": "v"}, "exactly one"),
        ({"kind": OpKind.CAS, "value": "v", "expect_value": "a", "expect_mod_revision": 1},
         "exactly one"),
        ({"kind": OpKind.CAS, "value": "v", "expect_value": "a"}, "whether it succeeded"),
        ({"kind": OpKind.GET, "complete": -1.0}, "before it is invoked"),
        ({"kind": OpKind.GET, "complete": None}, "time its answer came"),
    ],
)
def test_invalid_records_are_refused(fields: dict[str, Any], problem: str) -> None:
    base = {"id": 1, "client": 1, "key": "a", "invoke": 0.0, "complete": 1.0,
            "outcome": Outcome.OK}
    with pytest.raises(ValueError, match=problem):
        Operation(**{**base, **fields})


def test_unknown_outcome_returns_at_infinity_whatever_its_complete_time() -> None:
    assert put(1, "a", "x", 0, 5, outcome=UNKNOWN).return_time == math.inf
    assert put(1, "a", "x", 0, 5).return_time == 5


def test_descriptions() -> None:
    assert put(1, "k", "v", 0, 1, rev=3).describe() == "put k=v -> ok rev=3"
    assert get(1, "k", None, 0, 1).describe() == "get k -> ok read=<absent>"
    assert cas(1, "k", 4, "v", 0, 1, ok=True, rev=5).describe() == (
        "cas k if mod_rev=4 then =v -> ok succeeded rev=5"
    )
    assert txn(1, "k", "a", "v", 0, 1, ok=False, read="b", read_mod=2).describe() == (
        "txn k if value=a then =v -> ok not-succeeded read=b mod_rev=2"
    )
    unknown = put(1, "k", "v", 0, None, outcome=UNKNOWN)
    assert unknown.describe_output() == "unknown"


def test_recorder_stamps_invoke_and_complete() -> None:
    ticks = itertools.count()
    rec = Recorder(clock=lambda: float(next(ticks)))
    a = rec.invoke(1, OpKind.PUT, "k", value="v")
    b = rec.invoke(2, OpKind.GET, "k")
    c = rec.invoke(3, OpKind.CAS, "k", value="w", expect_value="v")
    d = rec.invoke(4, OpKind.DELETE, "k")
    done = rec.ok(a, revision=2)
    assert (done.invoke, done.complete, done.outcome) == (0.0, 4.0, Outcome.OK)
    rec.fail(b, "no leader")
    rec.unknown(c, "timeout")
    ops = rec.close()
    assert [(op.id, op.outcome) for op in ops] == [
        (a, Outcome.OK), (b, Outcome.FAIL), (c, Outcome.UNKNOWN), (d, Outcome.UNKNOWN)
    ]
    assert ops[1].error == "no leader" and ops[3].complete is None
