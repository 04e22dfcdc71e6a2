"""The member's default gRPC core experiments (minietcd/server/__init__.py): set before grpc is
first imported, so that grpc core reads them, and only when the environment sets none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # ``python -c`` imports this checkout's minietcd
PROBE = (
    "import os, sys; import minietcd.server.main; "
    "print(os.environ.get('GRPC_EXPERIMENTS')); print('grpc' in sys.modules)"
)


def probe(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_default_turns_the_event_engine_listener_off() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    assert probe(env) == ["-event_engine_listener", "True"]


def test_grpc_is_not_imported_before_the_default_is_set() -> None:
    # grpc core reads GRPC_EXPERIMENTS once, when grpc is imported: the package must set it first.
    code = "import sys; import minietcd.server; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_an_explicit_setting_wins() -> None:
    assert probe({**os.environ, "GRPC_EXPERIMENTS": "tcp_rcv_lowat"}) == ["tcp_rcv_lowat", "True"]
